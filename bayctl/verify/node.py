"""The node side of `bayctl verify`: probe endpoints on one node, driven over SSH.

Run on a node as ``python3 -m bayctl.verify.node``; it reads one JSON request per line on
stdin and answers one JSON line on stdout:

    {"op": "hello"}                       -> {"node", "digest", "source"}  (the agent's policy)
    {"op": "setup", "subnet": CIDR, "netns_prefix": P, "ports": {"tcp": [...], "udp": [...]},
     "endpoints": [{"name": "web", "group": "web"}]}
                                          -> {"endpoints": [{"name", "group", "ip"}]}
    {"op": "setup-external", "ip": IP, "ports": {...}}   (a node outside every group: the master)
    {"op": "register", "endpoints": [{"ip", "group"}]}   (other nodes' probes: ip -> group)
    {"op": "probe", "timeout": s, "tasks": [{"id", "from", "ip", "proto", "port"}]}
                                          -> {"results": [{"id", "observed", "detail"}]}
    {"op": "teardown"}                    -> {"ok": true}

A probe endpoint is a network namespace attached to this node exactly as a Mesos container
is: the node's CNI plugin (`bayctl-cni`) is invoked as the Mesos CNI isolator invokes it
(CNI_* environment, network config on stdin, the group in the NetworkInfo labels), so it
gets its link, its address and its registration with the node's agent from the same code.
The link is of the mode the node's own Mesos network is configured with (its CNI config in
the image's config dir, /etc/bayctl/node.env: ipvlan on a cloud node whose kernel has it),
veth where the node has no such config (a local bay's namespaces); setup answers it. Each endpoint
listens on every probed TCP and UDP port; probes connect (TCP), ask for an echo (UDP) or
ping (ICMP) and report whether an answer came. End of input, or teardown, removes every
endpoint, registration and link this process made.
"""

import concurrent.futures
import hashlib
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

from bayctl.errors import NodeError
from bayctl.node import hostgw, links
from bayctl.node.client import AgentClient
from bayctl.node.netns import run_in_netns

LINK_PREFIX = "bbv"  # links.LinkNames: 1-5 alphanumerics; bb(ay) v(erify)
CNI_NETWORK = "bb-verify"
NETNS_DIR = "/run/netns"
NODE_ENV = "/etc/bayctl/node.env"  # the image's statement of the node (mesos element)


def _node_env(node_env=NODE_ENV):
    """The image's statement of the node (KEY=value lines); {} where there is none."""
    values = {}
    try:
        with open(node_env) as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                if key and not key.startswith("#"):
                    values[key] = value.strip('"')
    except FileNotFoundError:
        pass
    return values


def cni_plugin(node_env=NODE_ENV):
    """bayctl-cni where the node's Mesos agent finds it (node.env's plugins dir, as the CNI
    isolator looks it up), else on PATH (a local bay); None if neither has it."""
    plugins_dir = _node_env(node_env).get("BAYCTL_CNI_PLUGINS_DIR")
    if plugins_dir and os.access(os.path.join(plugins_dir, "bayctl-cni"), os.X_OK):
        return os.path.join(plugins_dir, "bayctl-cni")
    return shutil.which("bayctl-cni")


def configured_link(node_env=NODE_ENV):
    """(link mode, ipvlan parent or None) of this node's own Mesos network (bayctl-hostgw's CNI
    config in the dir node.env names), resolved as bayctl-cni resolves it; veth where the
    node has none."""
    cni_dir = hostgw.DEFAULT_CNI_DIR
    try:
        with open(node_env) as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                if key == "BAYCTL_CNI_CONFIG_DIR" and value:
                    cni_dir = value.strip('"')
    except FileNotFoundError:
        return links.VETH, None
    try:
        with open(os.path.join(cni_dir, hostgw.CNI_CONFIG_NAME)) as handle:
            config = json.load(handle)
    except FileNotFoundError:
        return links.VETH, None
    except ValueError as err:
        raise NodeError(f"{os.path.join(cni_dir, hostgw.CNI_CONFIG_NAME)}: not JSON ({err})") from None
    parent = config.get("parent")
    return links.choose_mode(config.get("linkMode", links.AUTO), parent), parent


class ProbeNode:
    def __init__(self):
        self.agent = AgentClient(timeout=30)
        self.endpoints = []  # {"name", "group", "ip", "netns", "names": LinkNames}
        self.registered = []  # ips registered with the agent (local and remote)
        self.network_link = None
        self.cni_state = None
        self.link_mode = self.link_parent = None
        self.sockets = []  # listening sockets (TCP) and UDP sockets served by one thread
        self.stop = threading.Event()
        self.server = None

    # -- requests ---------------------------------------------------------------------------

    def hello(self, request):
        try:
            shown = self.agent.show_policy()
        except NodeError as err:
            return {"node": socket.gethostname(), "digest": None, "source": None, "agent": str(err)}
        return {"node": socket.gethostname(), "digest": shown.get("digest"), "source": shown.get("source")}

    def setup(self, request):
        prefix = request["netns_prefix"]
        self.cni_state = tempfile.mkdtemp(prefix=f"{prefix}cni-")
        network_key = hashlib.sha256(CNI_NETWORK.encode()).hexdigest()  # as bayctl-cni names it
        self.network_link = links.LinkNames(LINK_PREFIX, network_key).network
        self.link_mode, self.link_parent = configured_link()
        made = []
        for endpoint in request["endpoints"]:
            name = f"{prefix}{endpoint['name']}"
            netns = os.path.join(NETNS_DIR, name)
            record = {"name": endpoint["name"], "group": endpoint["group"], "netns": netns,
                      "subnet": request["subnet"]}
            self.endpoints.append(record)
            _run(["ip", "netns", "add", name])
            result = self._cni("ADD", record)
            record["ip"] = result["ips"][0]["address"].split("/")[0]
            self._listen(netns, request["ports"])
            made.append({"name": endpoint["name"], "group": endpoint["group"], "ip": record["ip"],
                         "link": self.link_mode})
        self._serve()
        return {"endpoints": made}

    def _cni(self, command, record):
        """Invoke the node's CNI plugin as the Mesos CNI isolator does."""
        config = {
            "cniVersion": "1.0.0", "name": CNI_NETWORK, "type": "bayctl-cni", "linkMode": self.link_mode,
            "linkPrefix": LINK_PREFIX, "stateDir": self.cni_state,
            "ipam": {"type": "bayctl", "subnet": record["subnet"]},
            **({"parent": self.link_parent} if self.link_parent else {}),
            "args": {"org.apache.mesos": {"network_info": {"name": CNI_NETWORK, "labels": {"labels": [
                {"key": "bayctl.group", "value": str(record["group"])}]}}}},
        }
        plugin = cni_plugin()
        if plugin is None:
            raise NodeError("bayctl-cni is not installed on this node")
        env = dict(os.environ, CNI_COMMAND=command, CNI_CONTAINERID=os.path.basename(record["netns"]),
                   CNI_NETNS=record["netns"], CNI_IFNAME="eth0", CNI_PATH=os.path.dirname(plugin))
        done = subprocess.run([plugin], input=json.dumps(config), capture_output=True, text=True, env=env,
                              timeout=120)
        try:
            answer = json.loads(done.stdout) if done.stdout.strip() else {}
        except ValueError:
            answer = {}
        if done.returncode != 0:
            reason = answer.get("msg") or done.stderr.strip() or f"exit {done.returncode}"
            raise NodeError(f"bayctl-cni {command} {record['name']}: {reason}")
        return answer

    def setup_external(self, request):
        self.endpoints.append({"name": "external", "group": "external", "ip": request["ip"], "netns": None})
        self._listen(None, request["ports"])
        self._serve()
        return {"endpoints": [{"name": "external", "group": "external", "ip": request["ip"]}]}

    def register(self, request):
        for endpoint in request["endpoints"]:
            self.agent.add_endpoint(endpoint["ip"], endpoint["group"])
            self.registered.append(endpoint["ip"])  # remote: undone by teardown
        return {"registered": len(request["endpoints"])}

    def probe(self, request):
        timeout = float(request.get("timeout", 2.0))
        by_name = {endpoint["name"]: endpoint for endpoint in self.endpoints}
        tasks = request["tasks"]
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(128, max(1, len(tasks)))) as pool:
            futures = [pool.submit(_probe_one, by_name[task["from"]]["netns"], task, timeout)
                       for task in tasks]
            results = [future.result() for future in futures]
        return {"results": results}

    def teardown(self, request=None):
        self.stop.set()
        if self.server is not None:
            self.server.join(5)
        for sock in self.sockets:
            sock.close()
        self.sockets = []
        for ip in self.registered:
            try:
                self.agent.remove_endpoint(ip)
            except NodeError:
                pass  # the agent may be gone (node torn down): nothing to undo there
        self.registered = []
        for endpoint in self.endpoints:
            if endpoint.get("netns"):
                try:
                    self._cni("DEL", endpoint)
                except NodeError:
                    pass  # the namespace goes below either way; the agent entry went above
                _run(["ip", "netns", "del", os.path.basename(endpoint["netns"])], check=False)
        self.endpoints = []
        if self.network_link:
            links.delete_link(self.network_link)  # CNI DEL keeps a network's bridge; verify's is its own
            self.network_link = None
        if self.cni_state:
            shutil.rmtree(self.cni_state, ignore_errors=True)
            self.cni_state = None
        return {"ok": True}

    # -- listening --------------------------------------------------------------------------

    def _listen(self, netns, ports):
        def make():
            made = []
            for port in ports.get("tcp", []):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("0.0.0.0", port))
                except OSError:
                    sock.close()  # something else listens there already: it answers for us
                    continue
                sock.listen(64)
                made.append(sock)
            for port in ports.get("udp", []):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    sock.bind(("0.0.0.0", port))
                except OSError:
                    sock.close()
                    continue
                made.append(sock)
            return made

        # A socket belongs to the namespace it was created in, whichever thread uses it later.
        self.sockets += run_in_netns(netns, make)

    def _serve(self):
        if self.server is not None:
            return
        self.server = threading.Thread(target=self._serve_loop, name="probe-responder", daemon=True)
        self.server.start()

    def _serve_loop(self):
        while not self.stop.is_set():
            ready, _, _ = select.select([s for s in self.sockets if s.fileno() >= 0], [], [], 0.2)
            for sock in ready:
                try:
                    if sock.type == socket.SOCK_STREAM:
                        conn, _ = sock.accept()
                        conn.close()
                    else:
                        data, peer = sock.recvfrom(2048)
                        sock.sendto(data, peer)
                except OSError:
                    continue


def _probe_one(netns, task, timeout):
    proto = task["proto"]
    try:
        if proto == "tcp":
            observed, detail = run_in_netns(netns, _tcp_probe, task["ip"], task["port"], timeout)
        elif proto == "udp":
            sock = run_in_netns(netns, socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
            observed, detail = _udp_probe(sock, task["ip"], task["port"], timeout)
        elif proto == "icmp":
            sock = run_in_netns(netns, socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            observed, detail = _icmp_probe(sock, task["ip"], task["id"], timeout)
        else:
            observed, detail = False, f"unknown protocol {proto}"
    except (OSError, NodeError) as err:
        observed, detail = False, f"error: {err}"
    return {"id": task["id"], "observed": observed, "detail": detail}


def _tcp_probe(ip, port, timeout):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((ip, port))
        return True, "connected"
    except ConnectionRefusedError:
        return True, "refused (reached the host, nothing listening)"
    except (socket.timeout, TimeoutError):
        return False, "no answer"
    except OSError as err:
        return False, err.strerror or str(err)
    finally:
        sock.close()


def _udp_probe(sock, ip, port, timeout):
    payload = os.urandom(8)
    try:
        sock.settimeout(timeout)
        sock.sendto(payload, (ip, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data, _ = sock.recvfrom(2048)
            if data == payload:
                return True, "echoed"
        return False, "no answer"
    except (socket.timeout, TimeoutError):
        return False, "no answer"
    except ConnectionRefusedError:
        return True, "port unreachable (reached the host)"
    finally:
        sock.close()


def _icmp_probe(sock, ip, ident, timeout):
    ident = (os.getpid() * 31 + int(ident)) & 0xFFFF
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    payload = b"bayctl-verify"
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, 1) + payload
    try:
        sock.settimeout(timeout)
        sock.sendto(packet, (ip, 0))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, "no echo reply"
            sock.settimeout(left)
            data, peer = sock.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, reply_ident, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if kind == 0 and reply_ident == ident and peer[0] == ip:
                return True, "echo reply"
    except (socket.timeout, TimeoutError):
        return False, "no echo reply"
    finally:
        sock.close()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _run(argv, check=True):
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NodeError(f"{' '.join(argv)}: {done.stderr.strip()}")


OPS = {"hello": ProbeNode.hello, "setup": ProbeNode.setup, "setup-external": ProbeNode.setup_external,
       "register": ProbeNode.register, "probe": ProbeNode.probe, "teardown": ProbeNode.teardown}


def main():
    node = ProbeNode()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            try:
                answer = OPS[request["op"]](node, request)
            except (NodeError, OSError, KeyError, ValueError) as err:
                answer = {"error": f"{request.get('op')}: {err}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            if request["op"] == "teardown":
                return 0
    finally:
        node.teardown()  # end of input (SSH closed, Ctrl-C on the controller): undo everything
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The node side of `bayctl verify`: probe endpoints on one node, driven over SSH.

Run on a node as ``python3 -m bayctl.verify.node``; it reads one JSON request per line on
stdin and answers one JSON line on stdout:

    {"op": "hello"}                       -> {"node", "digest", "source"}  (the agent's policy)
    {"op": "setup", "subnet": CIDR, "netns_prefix": P, "ports": {"tcp": [...], "udp": [...]},
     "endpoints": [{"name": "web", "group": "web"}], "workers": N|null (side by side; 1: in turn)}
                                          -> {"endpoints": [{"name", "group", "ip"}]}
    {"op": "setup-external", "ip": IP, "ports": {...}}   (a node outside every group: the master)
    {"op": "register", "endpoints": [{"ip", "group"}]}   (other nodes' probes: ip -> group)
    {"op": "probe", "timeout": s, "workers": N|null, "tasks": [{"id", "from", "ip", "proto", "port"}]}
                                          -> {"results": [{"id", "observed", "detail", "seconds"}]}
    {"op": "teardown"}                    -> {"ok": true}

A probe endpoint is a network namespace attached to this node exactly as a Mesos container
is: the node's CNI plugin (`bayctl-cni`) is invoked as the Mesos CNI isolator invokes it
(CNI_* environment, network config on stdin, the group in the NetworkInfo labels), so it
gets its link, its address and its registration with the node's agent from the same code.
The link is of the mode the node's own Mesos network is configured with (its CNI config in
the image's config dir, /etc/bayctl/node.env: ipvlan on a cloud node whose kernel has it),
veth where the node has no such config (a local bay's namespaces); setup answers it. Each endpoint
listens on every probed TCP and UDP port; the probes and what "reached" means are
bayctl.verify.probes, the one probe engine. End of input, or teardown, removes every
endpoint, registration and link this process made.
"""

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

from bayctl.errors import NodeError
from bayctl.node import attach, hostgw, links
from bayctl.node.client import AgentClient
from bayctl.verify import probes

LINK_PREFIX = "bbv"  # links.LinkNames: 1-5 alphanumerics; bb(ay) v(erify)
CNI_NETWORK = "bb-verify"
NETNS_DIR = "/run/netns"
ATTACH_WORKERS = 8  # a node's probe endpoints attached (CNI ADD) and detached side by side
NODE_ENV = "/etc/bayctl/node.env"  # the image's statement of the node (mesos element)


def _node_env(node_env=NODE_ENV):
    """The image's statement of the node (KEY=value lines); None where there is none."""
    values = {}
    try:
        with open(node_env) as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                if key and not key.startswith("#"):
                    values[key] = value.strip('"')
    except FileNotFoundError:
        return None
    return values


def cni_plugin(node_env=NODE_ENV):
    """bayctl-cni where the node's Mesos agent finds it (node.env's plugins dir, as the CNI
    isolator looks it up), else on PATH (a local bay); None if neither has it."""
    plugins_dir = (_node_env(node_env) or {}).get("BAYCTL_CNI_PLUGINS_DIR")
    if plugins_dir and os.access(os.path.join(plugins_dir, "bayctl-cni"), os.X_OK):
        return os.path.join(plugins_dir, "bayctl-cni")
    return shutil.which("bayctl-cni")


def configured_link(node_env=NODE_ENV):
    """(link mode, ipvlan parent or None) of this node's own Mesos network (bayctl-hostgw's CNI
    config in the dir node.env names), resolved as bayctl-cni resolves it; veth where the
    node has none."""
    values = _node_env(node_env)
    if values is None:
        return links.VETH, None
    path = os.path.join(values.get("BAYCTL_CNI_CONFIG_DIR") or hostgw.DEFAULT_CNI_DIR, hostgw.CNI_CONFIG_NAME)
    try:
        with open(path) as handle:
            config = json.load(handle)
    except FileNotFoundError:
        return links.VETH, None
    except ValueError as err:
        raise NodeError(f"{path}: not JSON ({err})") from None
    parent = config.get("parent")
    return links.choose_mode(config.get("linkMode", links.AUTO), parent), parent


class ProbeNode:
    def __init__(self):
        self.agent = AgentClient(timeout=30)
        self.endpoints = []  # {"name", "group", "ip", "netns", "names": LinkNames}
        self.registered = []  # ips registered with the agent (local and remote)
        self.network_link = None
        self.cni_state = None
        self.responder = probes.Responder()  # every endpoint answers on every probed port
        self.attach_workers = ATTACH_WORKERS
        self.link_mode = self.link_parent = None

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
        self.network_link = attach.network_link_name(LINK_PREFIX, CNI_NETWORK)  # as bayctl-cni names it
        self.attach_workers = request.get("workers") or ATTACH_WORKERS
        self.link_mode, self.link_parent = configured_link()
        records = []
        for endpoint in request["endpoints"]:
            name = f"{prefix}{endpoint['name']}"
            record = {"name": endpoint["name"], "group": endpoint["group"],
                      "netns": os.path.join(NETNS_DIR, name), "subnet": request["subnet"]}
            self.endpoints.append(record)  # before it exists: teardown undoes a half-made one too
            records.append(record)

        def place(record):
            _run(["ip", "netns", "add", os.path.basename(record["netns"])])
            result = self._cni("ADD", record)
            record["ip"] = result["ips"][0]["address"].split("/")[0]
            self.responder.listen(record["netns"], request["ports"])

        # The first ADD makes the network's bridge; the others then attach side by side (the
        # plugin's IPAM is a locked read-modify-write), so a node's share of many groups costs
        # about one plugin run, not one each.
        for record in records[:1]:
            place(record)
        _each(place, records[1:], workers=self.attach_workers)
        made = [{"name": r["name"], "group": r["group"], "ip": r["ip"], "link": self.link_mode}
                for r in records]
        return {"endpoints": made}

    def _cni(self, command, record):
        """Invoke the node's CNI plugin as the Mesos CNI isolator does."""
        config = {
            "cniVersion": "1.0.0", "name": CNI_NETWORK, "type": "bayctl-cni", "linkMode": self.link_mode,
            **({"parent": self.link_parent} if self.link_parent else {}),
            "linkPrefix": LINK_PREFIX, "stateDir": self.cni_state,
            "ipam": {"type": "bayctl", "subnet": record["subnet"]},
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
        self.responder.listen(None, request["ports"])
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
        measured = probes.probe_all([(by_name[task["from"]]["netns"], task["ip"], task["proto"], task["port"])
                                     for task in tasks], timeout, workers=request.get("workers"))
        results = []
        for task, (observed, detail, took) in zip(tasks, measured):
            results.append({"id": task["id"], "observed": observed, "detail": detail,
                            "seconds": round(took, 3)})
        return {"results": results}

    def teardown(self, request=None):
        self.responder.close()
        for ip in self.registered:
            try:
                self.agent.remove_endpoint(ip)
            except NodeError:
                pass  # the agent may be gone (node torn down): nothing to undo there
        self.registered = []
        def detach(endpoint):
            try:
                self._cni("DEL", endpoint)
            except NodeError:
                pass  # the namespace goes below either way; the agent entry went above
            _run(["ip", "netns", "del", os.path.basename(endpoint["netns"])], check=False)

        _each(detach, [endpoint for endpoint in self.endpoints if endpoint.get("netns")],
              workers=self.attach_workers)
        self.endpoints = []
        if self.network_link:
            links.delete_link(self.network_link)  # CNI DEL keeps a network's bridge; verify's is its own
            self.network_link = None
        if self.cni_state:
            shutil.rmtree(self.cni_state, ignore_errors=True)
            self.cni_state = None
        return {"ok": True}



def _each(func, items, workers):
    """func(item) for every item, side by side; the first error is raised once all are done."""
    if not items:
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        for future in [pool.submit(func, item) for item in items]:
            future.result()


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

"""Containers on one node, made of network namespaces, and real probes between them.

A `Lab` is a "node" namespace holding a bridge and one namespace per member joined to it
by a veth (`eth0` inside the member). Nothing is created in the caller's namespace, so
labs with different prefixes never collide. Every member runs real listeners: busybox
`nc` for TCP (echoing what it reads) and a small UDP echo; probes are busybox `ping` for
ICMP and sockets opened inside the source namespace for TCP and UDP: a probe succeeds only
if the reply came back (a stateful policy must let replies of allowed flows pass).

Used by `bayctl demo` and by the agent's functional tests.
"""

import concurrent.futures
import dataclasses
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time

from bayctl.errors import NodeError

NETNS_DIR = "/run/netns"
PROBE_PAYLOAD = b"bayctl-probe\n"

# A UDP echo server on the ports given as arguments (busybox nc has no UDP mode).
UDP_ECHO = """
import select, socket, sys
socks = []
for port in sys.argv[1:]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(port)))
    socks.append(s)
print("ready", flush=True)
while True:
    for s in select.select(socks, [], [])[0]:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)
"""


@dataclasses.dataclass
class Member:
    name: str
    ip: str
    netns: str            # path, e.g. /run/netns/bdemo-web1
    ifname: str = "eth0"


@dataclasses.dataclass(frozen=True)
class Probe:
    proto: str            # icmp, tcp, udp
    port: int = 0

    def __str__(self):
        return self.proto if self.proto == "icmp" else f"{self.proto}/{self.port}"


class Lab:
    def __init__(self, prefix, subnet="10.250.0.0/24"):
        self.prefix = prefix
        self.subnet = ipaddress.IPv4Network(subnet)
        self.node_ns = f"{prefix}-node"
        self.members = {}
        self._listeners = []
        self._hosts = self.subnet.hosts()
        self._created = []

    # -- topology ------------------------------------------------------------------------------

    def create(self):
        for tool in ("ip", "nsenter", "busybox"):
            if shutil.which(tool) is None:
                raise NodeError(f"`{tool}` not found: run tools/setup-dev")
        self._add_netns(self.node_ns)
        _ip("-n", self.node_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.node_ns, "link", "set", "br0", "up")
        return self

    def add_member(self, name):
        if name in self.members:
            return self.members[name]
        index = len(self.members) + 1
        netns_name = f"{self.prefix}-{name}"
        self._add_netns(netns_name)
        host_end = f"v{index}"
        _ip("-n", self.node_ns, "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
            "netns", netns_name)
        _ip("-n", self.node_ns, "link", "set", host_end, "master", "br0", "up")
        address = str(next(self._hosts))
        _ip("-n", netns_name, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        _ip("-n", netns_name, "link", "set", "eth0", "up")
        member = Member(name, address, os.path.join(NETNS_DIR, netns_name))
        self.members[name] = member
        return member

    def _add_netns(self, name):
        if os.path.exists(os.path.join(NETNS_DIR, name)):
            _ip("netns", "del", name)   # left over from an interrupted run with this prefix
        _ip("netns", "add", name)
        self._created.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def destroy(self):
        for process in self._listeners:
            process.kill()
            process.wait()
        self._listeners.clear()
        for name in reversed(self._created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self._created.clear()
        self.members.clear()

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.destroy()

    # -- listeners and probes ------------------------------------------------------------------

    def listen(self, probes):
        """Start echo listeners in every member for the ports of `probes` (killed by destroy())."""
        for member in self.members.values():
            self._listeners.extend(start_listeners(member.netns, probes))

    def measure(self, pairs, probes, timeout=1.0):
        """{(src name, dst name, probe): reached} for every pair of member names and probe."""
        jobs = [(src, dst, p) for src, dst in pairs for p in probes]
        results = measure([(self.members[src].netns, self.members[dst].ip, p) for src, dst, p in jobs],
                          timeout=timeout)
        return dict(zip(jobs, results))


def start_listeners(netns, probes):
    """Echo listeners inside `netns` on every TCP and UDP port of `probes`; returns the processes."""
    tcp_ports = sorted({p.port for p in probes if p.proto == "tcp"})
    udp_ports = sorted({p.port for p in probes if p.proto == "udp"})
    processes = [_spawn_in(netns, ["busybox", "nc", "-ll", "-p", str(port), "-e", "/bin/cat"])
                 for port in tcp_ports]
    if udp_ports:
        process = _spawn_in(netns, [sys.executable, "-c", UDP_ECHO, *map(str, udp_ports)],
                            stdout=subprocess.PIPE)
        process.stdout.readline()       # "ready": bound before anyone probes
        processes.append(process)
    for port in tcp_ports:
        _wait_tcp_listening(netns, port)
    return processes


def reaches(src_netns, dst_ip, probe, timeout=1.0):
    """True if `probe` sent from inside `src_netns` reached `dst_ip` AND its reply came back."""
    if probe.proto == "icmp":
        wait = str(max(1, round(timeout)))
        argv = ["nsenter", f"--net={src_netns}", "busybox", "ping", "-c", "1", "-W", wait, dst_ip]
        return subprocess.run(argv, capture_output=True).returncode == 0
    return _in_netns(src_netns, _socket_probe, probe.proto, dst_ip, probe.port, timeout)


def measure(jobs, timeout=1.0, workers=48):
    """[reached] for each (src netns, dst ip, probe) in `jobs`, probed concurrently.

    Denied probes cost a timeout each; running them side by side keeps a matrix to seconds.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: reaches(*job, timeout=timeout), jobs))


def _ip(*args):
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise NodeError(f"ip {' '.join(args)}: {result.stderr.strip() or 'failed'}")


def _spawn_in(netns, argv, stdout=subprocess.DEVNULL):
    # nsenter --net, not `ip netns exec`: the latter remounts /sys (see PLATFORM.md).
    return subprocess.Popen(["nsenter", f"--net={netns}", *argv], stdin=subprocess.DEVNULL,
                            stdout=stdout, stderr=subprocess.DEVNULL, start_new_session=True)


def _in_netns(netns, func, *args):
    from bayctl.node.netns import run_in_netns

    return run_in_netns(netns, func, *args)


def _socket_probe(proto, ip, port, timeout):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((ip, port))
            sock.sendall(PROBE_PAYLOAD)
            received = b""
            while len(received) < len(PROBE_PAYLOAD):
                chunk = sock.recv(2048)
                if not chunk:
                    break
                received += chunk
            return received == PROBE_PAYLOAD
        except OSError:          # timeout (dropped), refused, unreachable
            return False


def _wait_tcp_listening(netns, port, attempts=200):
    # Over the member's own loopback: no policy program sits there.
    for _ in range(attempts):
        if _in_netns(netns, _socket_probe, "tcp", "127.0.0.1", port, 1.0):
            return
        time.sleep(0.02)
    raise NodeError(f"TCP listener on port {port} in {netns} did not start")


# -- what a policy says ---------------------------------------------------------------------------

OTHER_PORT_FROM = 7000      # probe one port no rule names, to show it is denied


def probes_for(policy):
    """The probes that exercise `policy`: ICMP, both ends of every port range its rules name,
    and one TCP and one UDP port no rule names."""
    ports = {"tcp": set(), "udp": set()}
    specs = [spec for rule in policy.rules for spec in rule.ports]
    for spec in specs:
        if spec.proto in ports and not spec.any_port:
            ports[spec.proto].update({spec.lo, spec.hi})
    for proto in ports:
        port = OTHER_PORT_FROM
        while any(spec.proto == proto and (spec.any_port or spec.lo <= port <= spec.hi) for spec in specs):
            port += 1
        ports[proto].add(port)
    probes = [Probe("icmp")]
    for proto in ("tcp", "udp"):
        probes += [Probe(proto, port) for port in sorted(ports[proto])]
    return probes


def policy_allows(policy, src_tag, dst_tag, probe):
    """The policy model's verdict for the first packet of `probe` from src_tag to dst_tag."""
    from bayctl.policy import layout

    return policy.allows(src_tag, dst_tag, layout.PROTO_NUMBERS[probe.proto], probe.port)


def group_members(policy, doubled=2):
    """[(group name, tag)] to place one endpoint each: every named group of `policy`, the
    first `doubled` of them (by tag) twice so intra-group traffic is exercised, and one
    `external` peer (tag 0) that is registered nowhere."""
    named = sorted(policy.named_groups.items(), key=lambda item: item[1])
    members = []
    for index, (name, tag) in enumerate(named):
        members += [(name, tag)] * (2 if index < doubled else 1)
    return members + [("external", 0)]

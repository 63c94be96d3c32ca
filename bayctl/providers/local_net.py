"""The local bay's network: one namespace per node on a bridge in this machine's namespace.

Layout of bay number k (k is picked once, at create, and kept in the bay's state)::

    bridge  bb-<short>         10.(64+k).0.1/24   this machine: where bayctl runs
    master  bb-<bay>-master    10.(64+k).0.2      eth0 (veth to the bridge)
    slave i bb-<bay>-slave<i>  10.(64+k).0.(10+i) eth0; its containers in 10.(64+k).(i+1).0/24

Every node routes each slave's container subnet to that slave, as a cloud bay's network
would. Namespaces are made with `ip netns add` (a bind mount under /run/netns); nothing
that pins eBPF objects runs through `ip netns exec` (it remounts /sys privately).
"""

import contextlib
import hashlib
import ipaddress
import os
import subprocess
from typing import List, Optional

from bayctl.errors import NodeError

PREFIX = "bb-"
NETNS_DIR = "/run/netns"
FIRST_OCTET, SECOND_OCTET_BASE, MAX_BAYS = 10, 64, 64
SLAVE_HOST_BASE = 10


def netns_name(bay: str, node: str) -> str:
    return f"{PREFIX}{bay}-{node}"


def netns_path(bay: str, node: str) -> str:
    return os.path.join(NETNS_DIR, netns_name(bay, node))


def short_name(bay: str) -> str:
    """A bay name that fits the 15-byte interface names with room for a suffix."""
    if len(bay) <= 8:
        return bay
    return bay[:4] + hashlib.sha256(bay.encode()).hexdigest()[:4]


def bridge_name(bay: str) -> str:
    return f"{PREFIX}{short_name(bay)}"


def veth_name(bay: str, node: str) -> str:
    suffix = "m" if node == "master" else node.replace("slave", "")
    return f"{PREFIX}{short_name(bay)}-{suffix}"


class Addressing:
    """Addresses of bay number `index`."""

    def __init__(self, index: int):
        if not 0 <= index < MAX_BAYS:
            raise NodeError(f"local bay index {index} out of range")
        self.index = index
        self.supernet = ipaddress.ip_network(f"{FIRST_OCTET}.{SECOND_OCTET_BASE + index}.0.0/16")
        self.node_net = ipaddress.ip_network(f"{FIRST_OCTET}.{SECOND_OCTET_BASE + index}.0.0/24")

    @property
    def gateway(self) -> str:
        return str(self.node_net[1])

    @property
    def master(self) -> str:
        return str(self.node_net[2])

    def slave(self, i: int) -> str:
        return str(self.node_net[SLAVE_HOST_BASE + i])

    def container_subnet(self, i: int) -> str:
        return f"{FIRST_OCTET}.{SECOND_OCTET_BASE + self.index}.{i + 1}.0/24"


def pick_index(taken: List[int]) -> int:
    """The lowest bay index not used by another local bay nor overlapping this machine's routes."""
    routed = _routed_networks()
    for index in range(MAX_BAYS):
        if index in taken:
            continue
        supernet = Addressing(index).supernet
        if any(supernet.overlaps(net) for net in routed):
            continue
        return index
    raise NodeError(f"no free address range for another local bay (all {MAX_BAYS} in use)")


def _routed_networks():
    out = run(["ip", "-4", "-o", "route", "show", "table", "all"], check=False)
    nets = []
    for line in out.splitlines():
        first = line.split()[0] if line.split() else ""
        if first in ("default", "broadcast", "local", "unreachable", "multicast"):
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(first, strict=False))
    return nets


# --- commands --------------------------------------------------------------------------------

def run(argv, check=True, input=None) -> str:
    """Run an iproute2/sysctl command; NodeError with its own message if it fails."""
    try:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise NodeError(f"{argv[0]} not found (tools/setup-dev installs it)") from None
    if check and done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise NodeError(f"{' '.join(argv)}: {message[-1] if message else f'exit {done.returncode}'}")
    return done.stdout


def in_netns(path: str, argv) -> List[str]:
    """argv run inside the namespace at `path`, keeping this machine's /sys (and bpffs)."""
    return ["nsenter", f"--net={path}", *argv]


def link_exists(name: str, netns: Optional[str] = None) -> bool:
    argv = ["ip", "link", "show", "dev", name]
    done = subprocess.run(in_netns(netns, argv) if netns else argv, capture_output=True)
    return done.returncode == 0


# --- building --------------------------------------------------------------------------------

def ensure_bridge(bay: str, addressing: Addressing) -> None:
    bridge = bridge_name(bay)
    if not link_exists(bridge):
        run(["ip", "link", "add", bridge, "type", "bridge"])
    cidr = f"{addressing.gateway}/{addressing.node_net.prefixlen}"
    if cidr not in run(["ip", "-4", "-o", "addr", "show", "dev", bridge]):
        run(["ip", "addr", "add", cidr, "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])


def ensure_node(bay: str, node: str, address: str, addressing: Addressing) -> None:
    """The node's namespace, its eth0 on the bridge with `address`, lo up, forwarding on."""
    name, path = netns_name(bay, node), netns_path(bay, node)
    if not os.path.exists(path):
        run(["ip", "netns", "add", name])
    veth = veth_name(bay, node)
    if not link_exists("eth0", path):
        if link_exists(veth):  # a half-made pair from an interrupted run
            run(["ip", "link", "del", veth])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name])
    run(["ip", "link", "set", veth, "master", bridge_name(bay), "up"])
    cidr = f"{address}/{addressing.node_net.prefixlen}"
    inside = lambda argv: run(in_netns(path, argv))  # noqa: E731
    if cidr not in inside(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]):
        inside(["ip", "addr", "add", cidr, "dev", "eth0"])
    inside(["ip", "link", "set", "eth0", "up"])
    inside(["ip", "link", "set", "lo", "up"])
    # Slaves route their containers' traffic; the master reaches containers across slaves.
    inside(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])


def ensure_routes(bay: str, node: str, addressing: Addressing, slaves: int) -> None:
    """Each other slave's container subnet via that slave (replace: idempotent)."""
    path = netns_path(bay, node)
    for i in range(slaves):
        if node == f"slave{i}":
            continue
        run(in_netns(path, ["ip", "route", "replace", addressing.container_subnet(i),
                            "via", addressing.slave(i), "dev", "eth0"]))


# --- finding and removing --------------------------------------------------------------------

def bay_namespaces(bay: str) -> List[str]:
    """Every namespace of the bay (nodes, and containers made on its slaves), by name."""
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    prefix = f"{PREFIX}{bay}-"
    return sorted(name for name in names if name.startswith(prefix))


def processes_in(netns_file: str) -> List[int]:
    """PIDs of processes whose network namespace is the one at `netns_file`."""
    try:
        target = os.stat(netns_file)
    except FileNotFoundError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_ino, st.st_dev) == (target.st_ino, target.st_dev):
            pids.append(int(entry))
    return pids


def delete_namespace(name: str) -> None:
    run(["ip", "netns", "del", name], check=False)


def delete_link(name: str) -> None:
    if link_exists(name):
        run(["ip", "link", "del", name], check=False)

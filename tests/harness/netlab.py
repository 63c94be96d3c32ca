"""netlab: throw-away network namespaces, veth pairs and bridges for tests, always cleaned up.

Every name carries the caller's prefix plus a per-lab run id, so labs of different rooms (and
two runs of one room) never collide. Nothing here pins bpffs objects, so namespaces are made
with `ip netns add` and commands run with `nsenter --net=/run/netns/X` (which, unlike
`ip netns exec`, keeps the caller's /sys and so its bpffs pins visible).

API
---
    from harness.netlab import NetLab

    with NetLab("bdp") as lab:                      # or lab = NetLab("bdp") ... lab.close()
        # NetLab(prefix, ipv6=False): new namespaces have IPv6 disabled (quiet links) unless ipv6=True
        a = lab.netns("a")                          # Netns: .name "bdp-1a2b-a", .path /run/netns/...
        sw = lab.netns("sw")
        lab.bridge("br", netns=sw)                  # bridge "<prefix><id>br" inside sw (None = host)
        link = lab.veth(a, "10.9.0.1/24", peer_netns=sw, bridge="br")
        # -> Veth(netns=a, ifname="eth0", peer_netns=sw, peer="<prefix><id>v0")
        #    peer_netns=None puts the peer end in the host namespace; peer_addr="10.9.0.254/24"
        #    gives the peer end an address; bridge=<name given to lab.bridge> enslaves the peer.
        a.run("busybox", "ping", "-c", "1", "10.9.0.2")      # CompletedProcess; check=True raises
        proc = a.popen("busybox", "nc", "-l", "-p", "8080")   # killed on close() if still running
        a.ip("route", "add", "default", "via", "10.9.0.254") # `ip -n <name> ...`
        a.python("print(1)")                                  # python3 -c inside the namespace

close() (and the context manager, and an atexit hook as last resort) kills the processes it
started, deletes the namespaces (which deletes the links inside them) and the host-side links
and bridges it made. Errors during cleanup never mask a test failure.
"""

import atexit
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass

NETNS_DIR = "/run/netns"


def _sh(*argv, check=True, timeout=30, **kwargs):
    return subprocess.run([str(a) for a in argv], check=check, timeout=timeout, capture_output=True,
                          text=True, **kwargs)


class Netns:
    """A named network namespace at /run/netns/<name>."""

    def __init__(self, lab, name):
        self.lab, self.name = lab, name
        self.path = os.path.join(NETNS_DIR, name)

    def command(self, *argv):
        return ["nsenter", f"--net={self.path}", *[str(a) for a in argv]]

    def run(self, *argv, check=True, timeout=60, input=None):
        """Run a command inside the namespace; raise CalledProcessError (with its output) if it fails."""
        result = subprocess.run(self.command(*argv), capture_output=True, text=True, timeout=timeout,
                                input=input)
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout,
                                                result.stderr)
        return result

    def popen(self, *argv, **kwargs):
        """Start a command inside the namespace; the lab kills it on close()."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(self.command(*argv), **kwargs)
        self.lab._processes.append(proc)
        return proc

    def python(self, code, *args, **kwargs):
        """Run `python3 -c code args...` (this interpreter) inside the namespace."""
        return self.run(sys.executable, "-c", code, *args, **kwargs)

    def ip(self, *argv, check=True):
        return _sh("ip", "-n", self.name, *argv, check=check)

    def __repr__(self):
        return f"Netns({self.name})"


@dataclass
class Veth:
    netns: Netns            # where `ifname` is
    ifname: str
    peer_netns: object      # Netns, or None for the host namespace
    peer: str               # the other end's name

    def peer_ifindex(self):
        return _ifindex(self.peer_netns, self.peer)

    def ifindex(self):
        return _ifindex(self.netns, self.ifname)


def _ifindex(netns, ifname):
    argv = ["cat", f"/sys/class/net/{ifname}/ifindex"]
    if netns is None:
        return int(_sh(*argv).stdout)
    # /sys/class/net shows the namespace of whoever mounted /sys: ask the namespace itself.
    out = netns.run("ip", "-o", "link", "show", "dev", ifname).stdout
    return int(out.split(":", 1)[0])


class NetLab:
    def __init__(self, prefix, ipv6=False):
        if not prefix or len(prefix) > 6:
            raise ValueError("netlab prefix must be 1..6 characters (interface names are 15 max)")
        self.prefix = prefix
        self.run_id = secrets.token_hex(2)
        self._namespaces, self._host_links, self._processes = [], [], []
        self._bridges = {}
        self._links = 0
        self._closed = False
        self.ipv6 = ipv6
        atexit.register(self.close)

    # -- building ----------------------------------------------------------------------------

    def netns(self, name):
        ns = Netns(self, f"{self.prefix}-{self.run_id}-{name}")
        _sh("ip", "netns", "add", ns.name)
        self._namespaces.append(ns)
        ns.ip("link", "set", "lo", "up")
        if not self.ipv6:
            # Quiet links: no router solicitations or MLD reports (exact packet counts in tests).
            for scope in ("all", "default"):
                ns.run("sysctl", "-q", "-w", f"net.ipv6.conf.{scope}.disable_ipv6=1")
        return ns

    def link_name(self, tag):
        """A host-unique interface name built from the prefix and run id (<= 15 chars)."""
        name = f"{self.prefix}{self.run_id}{tag}"
        if len(name) > 15:
            raise ValueError(f"interface name {name} is longer than 15 characters")
        return name

    def bridge(self, name, netns=None, addr=None):
        ifname = self.link_name(name)
        self._ip(netns, "link", "add", ifname, "type", "bridge")
        if netns is None:
            self._host_links.append(ifname)
        if addr:
            self._ip(netns, "addr", "add", addr, "dev", ifname)
        self._ip(netns, "link", "set", ifname, "up")
        self._bridges[name] = (netns, ifname)
        return ifname

    def veth(self, netns, addr=None, ifname="eth0", peer_netns=None, peer_addr=None, bridge=None,
             peer=None):
        """A veth pair: `ifname` (with `addr`) inside `netns`, the peer in `peer_netns` (None = host)."""
        peer = peer or self.link_name(f"v{self._links}")
        self._links += 1
        argv = ["ip", "link", "add", ifname, "netns", netns.name, "type", "veth", "peer", "name", peer]
        if peer_netns is not None:
            argv += ["netns", peer_netns.name]
        _sh(*argv)
        if peer_netns is None:
            self._host_links.append(peer)
        if addr:
            netns.ip("addr", "add", addr, "dev", ifname)
        netns.ip("link", "set", ifname, "up")
        if peer_addr:
            self._ip(peer_netns, "addr", "add", peer_addr, "dev", peer)
        if bridge:
            br_netns, br_ifname = self._bridges[bridge]
            if br_netns is not peer_netns:
                raise ValueError(f"bridge {bridge} is not in the peer's namespace")
            self._ip(peer_netns, "link", "set", peer, "master", br_ifname)
        self._ip(peer_netns, "link", "set", peer, "up")
        return Veth(netns, ifname, peer_netns, peer)

    def _ip(self, netns, *argv):
        if netns is None:
            return _sh("ip", *argv)
        return netns.ip(*argv)

    # -- teardown ----------------------------------------------------------------------------

    def close(self):
        if self._closed:
            return
        self._closed = True
        for proc in self._processes:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError, OSError):
                pass
        for ns in self._namespaces:
            _sh("ip", "netns", "del", ns.name, check=False)
        for ifname in self._host_links:
            if os.path.exists(f"/sys/class/net/{ifname}"):
                _sh("ip", "link", "del", ifname, check=False)
        atexit.unregister(self.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tools_present():
    """Whether the commands netlab relies on are installed."""
    return all(shutil.which(tool) for tool in ("ip", "nsenter", "busybox"))

"""The VM tier's networks on this machine: what Neutron's L2/L3 agents would build, in ONE
network namespace the test owns.

- the namespace plays every router: IP forwarding on, each network a Linux bridge
  (`brq<network id>`, as linuxbridge-agent names them) holding the gateway addresses of the
  subnets attached to a router;
- each bound port is a tap (`tap<port id>`) on its network's bridge; its VM's qemu runs in
  the namespace and opens that tap;
- the external network is reached from the host through one veth (`bvm-ext` here, `ext` in
  the namespace); the floating range is routed to it, and each floating IP is NATed to its
  port's fixed IP (iptables DNAT/SNAT in the namespace, as the L3 agent does).
The floating range is 198.18.100.0/24 (RFC 2544 benchmarking space; another hundred of the
port base moves it, see EXTERNAL_CIDR): nothing on this machine uses it, and the host route
sends it only into this namespace.
Security groups and allowed address pairs are not enforced here (Neutron's data only).
"""

import ipaddress
import os
import subprocess

# One VM tier per cloud tier: its names and ranges follow BAYCTL_CLOUD_PORT_BASE (as the tier's
# ports do, cloudtier/tier.py), so two VM tiers on one machine never share a namespace, a veth
# or a host route. The default base keeps the historical names and ranges.
_BASE = int(os.environ.get("BAYCTL_CLOUD_PORT_BASE", "15500"))
_SLOT = (_BASE // 100 - 155) % 100   # 0 for the default base, 40 for 19500, 42 for 19700
NAMESPACE = "bayctl-vmtier" + (f"-{_SLOT}" if _SLOT else "")
HOST_VETH, NS_VETH = "bvm-ext" + (f"{_SLOT}" if _SLOT else ""), "ext"
LINK_CIDR = f"198.18.{99 - _SLOT}.0/30" if _SLOT else "198.18.99.0/30"  # host .1 <-> namespace .2
EXTERNAL_CIDR = f"198.18.{100 + _SLOT}.0/24"  # the external network's subnet: floating IPs


def sh(*argv, check=True):
    res = subprocess.run(argv, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")
    return res.stdout


def bridge_name(network_id):
    return ("brq" + network_id)[:15]


def tap_name(port_id):
    return ("tap" + port_id)[:14]


class Fabric:
    def __init__(self, namespace=NAMESPACE):
        self.namespace = namespace
        self.netns_path = f"/run/netns/{namespace}"
        self.nat = {}  # floating ip id -> (floating address, fixed address)
        self.link = list(ipaddress.ip_network(LINK_CIDR).hosts())
        sh("ip", "netns", "add", namespace)
        try:
            self.ns("ip", "link", "set", "lo", "up")
            self.ns("sysctl", "-qw", "net.ipv4.ip_forward=1")
            sh("ip", "link", "add", HOST_VETH, "type", "veth", "peer", "name", NS_VETH, "netns", namespace)
            sh("ip", "addr", "add", f"{self.link[0]}/30", "dev", HOST_VETH)
            sh("ip", "link", "set", HOST_VETH, "up")
            self.ns("ip", "addr", "add", f"{self.link[1]}/30", "dev", NS_VETH)
            self.ns("ip", "link", "set", NS_VETH, "up")
            sh("ip", "route", "add", EXTERNAL_CIDR, "via", str(self.link[1]), "dev", HOST_VETH)
        except Exception:
            self.close()
            raise

    def ns(self, *argv, check=True):
        return sh("ip", "netns", "exec", self.namespace, *argv, check=check)

    def ns_argv(self, argv):
        """argv run inside the namespace (qemu, so that it can open the namespace's taps)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    @property
    def host_netns(self):
        """Where a process in the namespace goes back to for the host's loopback (Heat)."""
        return f"/proc/{os.getpid()}/ns/net"

    # -- Neutron's events --------------------------------------------------------------------
    def _ensure_bridge(self, network_id):
        bridge = bridge_name(network_id)
        if self.ns("ip", "link", "show", bridge, check=False) == "":
            self.ns("ip", "link", "add", bridge, "type", "bridge")
            self.ns("ip", "link", "set", bridge, "up")
        return bridge

    def router_interface_added(self, network, subnet):
        bridge = self._ensure_bridge(network["id"])
        prefix = ipaddress.ip_network(subnet["cidr"]).prefixlen
        self.ns("ip", "addr", "replace", f"{subnet['gateway_ip']}/{prefix}", "dev", bridge)

    def router_interface_removed(self, subnet):
        if subnet is None:
            return
        prefix = ipaddress.ip_network(subnet["cidr"]).prefixlen
        self.ns("ip", "addr", "del", f"{subnet['gateway_ip']}/{prefix}", "dev",
                bridge_name(subnet["network_id"]), check=False)

    def network_deleted(self, network):
        self.ns("ip", "link", "del", bridge_name(network["id"]), check=False)

    def floating_ip_changed(self, fip):
        old = self.nat.pop(fip["id"], None)
        if old is not None:
            self._nat("-D", *old)
        if fip.get("port_id") and fip.get("fixed_ip_address"):
            new = (fip["floating_ip_address"], fip["fixed_ip_address"])
            self._nat("-A", *new)
            self.nat[fip["id"]] = new

    def _nat(self, op, floating, fixed):
        self.ns("iptables", "-t", "nat", op, "PREROUTING", "-d", floating, "-j", "DNAT",
                "--to-destination", fixed, check=op == "-A")
        self.ns("iptables", "-t", "nat", op, "POSTROUTING", "-s", fixed, "-o", NS_VETH, "-j", "SNAT",
                "--to-source", floating, check=op == "-A")

    # -- Nova's -------------------------------------------------------------------------------
    def plug(self, port):
        """A tap for the port on its network's bridge; returns the tap's name."""
        tap = tap_name(port["id"])
        bridge = self._ensure_bridge(port["network_id"])
        self.ns("ip", "tuntap", "add", "dev", tap, "mode", "tap")
        self.ns("ip", "link", "set", tap, "master", bridge, "up")
        return tap

    def unplug(self, port_id):
        self.ns("ip", "link", "del", tap_name(port_id), check=False)

    def close(self):
        sh("ip", "route", "del", EXTERNAL_CIDR, "dev", HOST_VETH, check=False)
        sh("ip", "link", "del", HOST_VETH, check=False)
        sh("ip", "netns", "del", self.namespace, check=False)

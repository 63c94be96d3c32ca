"""Container links: the one link/namespace module behind the Docker driver and the CNI plugin.

Two kinds of container interface, chosen per network:

- **ipvlan** (modes l2, l3, l3s): a slave of the node's parent interface. Slaves cannot reach
  the parent's own addresses, so each network also gets a *gateway slave* in the node's
  namespace holding the network's gateway address: containers reach the node through it
  (their default route points at it) and the node reaches them through its subnet route.
- **veth**, where the kernel has no ipvlan (this is detected once per parent and reported):
  each network gets a Linux bridge holding the gateway address, and each container a veth
  pair whose node end is a port of that bridge. The bridge plays the parent's role: containers
  of a network share one L2 segment, exactly as ipvlan l2 slaves do.

Where the policy program is attached follows from the kind: on a veth pair, the node end
(it never leaves the node's namespace, so it is attached before the container runs); on an
ipvlan slave, the slave itself inside the container's namespace (a netns move drops qdiscs,
so that attach has to happen after the move).
"""

import contextlib
import functools
import ipaddress
import os
import threading
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from bayctl.errors import NodeError
from bayctl.node.link_modes import AUTO, IPVLAN_MODES, MODES, VETH  # noqa: F401  (links.VETH, ...)
from bayctl.node.netns import run_in_netns


def _netlink_call(what, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except NetlinkError as e:
        raise NodeError(f"{what}: {os.strerror(e.code) if e.code else e}") from None


def default_parent():
    """The interface of the node's default route: the natural ipvlan parent."""
    with IPRoute() as ip:
        for route in ip.get_default_routes(family=2):
            oif = route.get_attr("RTA_OIF")
            if oif:
                return ip.get_links(oif)[0].get_attr("IFLA_IFNAME")
    raise NodeError("no default route: name the ipvlan parent interface explicitly")


_PROBING = threading.Lock()


def ipvlan_supported(parent):
    """Can this kernel make an ipvlan slave of `parent`? Probed once per parent by trying.

    One probe at a time per process: the probe link's name is the process's, and the node
    agent runs many CNI calls at once on its threads."""
    with _PROBING:
        return _probe_ipvlan(parent)


@functools.cache
def _probe_ipvlan(parent):
    probe = f"bayprobe{os.getpid() % 100000}"
    with IPRoute() as ip:
        index = _lookup(ip, parent)
        if index is None:
            raise NodeError(f"parent interface {parent} does not exist")
        try:
            ip.link("add", ifname=probe, kind="ipvlan", link=index, ipvlan_mode=0)
        except NetlinkError as e:
            # EOPNOTSUPP: no ipvlan in this kernel (no module, or modules cannot load).
            if e.code in (95, 19):
                return False
            raise NodeError(f"probing ipvlan on {parent}: {os.strerror(e.code)}") from None
        ip.link("del", ifname=probe)
        return True


def choose_mode(requested, parent=None):
    """Resolve "auto" to ipvlan-l2 where the kernel has ipvlan, else veth; check explicit modes."""
    if requested not in (AUTO, *MODES):
        raise NodeError(f"link mode {requested!r} is not one of {', '.join((AUTO, *MODES))}")
    if requested == VETH:
        return VETH
    supported = ipvlan_supported(parent or default_parent())
    if requested == AUTO:
        return "ipvlan-l2" if supported else VETH
    if not supported:
        raise NodeError(f"link mode {requested}: this kernel has no ipvlan (use veth or auto)")
    return requested


def is_ipvlan(mode):
    return mode in IPVLAN_MODES


@dataclass(frozen=True)
class LinkNames:
    """Interface names derived from one id; all within protocol.IFNAME_MAX_LEN (a prefix
    of at most 5, 8 of the key, one letter) and carrying the prefix."""

    prefix: str
    key: str

    def __post_init__(self):
        if not self.prefix or len(self.prefix) > 5 or not self.prefix.isalnum():
            raise NodeError(f"link prefix {self.prefix!r} must be 1-5 letters or digits")

    @property
    def network(self):  # bridge (veth) or gateway slave (ipvlan)
        return f"{self.prefix}n{self.key[:8]}"

    @property
    def host(self):  # node end of a veth pair
        return f"{self.prefix}{self.key[:8]}"

    @property
    def container(self):  # the container's interface before it is moved and renamed
        return f"{self.prefix}{self.key[:8]}c"


def _lookup(ip, ifname):
    found = ip.link_lookup(ifname=ifname)
    return found[0] if found else None


def link_exists(ifname):
    with IPRoute() as ip:
        return _lookup(ip, ifname) is not None


def create_network_link(mode, name, gateway_cidr, parent=None):
    """The node side of one network: a bridge (veth) or a gateway ipvlan slave, holding the gateway.

    Idempotent: an existing link of that name is reused (a plugin restart keeps them).
    """
    # Concurrent CNI ADDs of one network race to create it: EEXIST means another one won.
    with IPRoute() as ip:
        index = _lookup(ip, name)
        if index is None:
            if is_ipvlan(mode):
                parent_index = _lookup(ip, parent)
                if parent_index is None:
                    raise NodeError(f"parent interface {parent} does not exist")
                _netlink_call_unless_exists(f"creating gateway slave {name} of {parent}", ip.link, "add",
                                            ifname=name, kind="ipvlan", link=parent_index,
                                            ipvlan_mode=IPVLAN_MODES[mode])
            else:
                _netlink_call_unless_exists(f"creating bridge {name}", ip.link, "add", ifname=name,
                                            kind="bridge")
            index = _lookup(ip, name)
            if index is None:
                raise NodeError(f"{name} vanished right after it was created")
        if gateway_cidr:
            iface = ipaddress.ip_interface(gateway_cidr)
            present = {a.get_attr("IFA_ADDRESS") for a in ip.get_addr(index=index)}
            if str(iface.ip) not in present:
                _netlink_call_unless_exists(f"adding {gateway_cidr} to {name}", ip.addr, "add", index=index,
                                            address=str(iface.ip), prefixlen=iface.network.prefixlen)
        _netlink_call(f"bringing {name} up", ip.link, "set", index=index, state="up")


def _netlink_call_unless_exists(what, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except NetlinkError as e:
        if e.code != 17:  # EEXIST
            raise NodeError(f"{what}: {os.strerror(e.code) if e.code else e}") from None
        return None


def delete_link(name):
    """Delete a link by name in the node's namespace; a missing link is not an error."""
    with IPRoute() as ip:
        index = _lookup(ip, name)
        if index is None:
            return False
        try:
            ip.link("del", index=index)
        except NetlinkError as e:
            if e.code != 19:  # ENODEV: gone meanwhile (its veth peer's netns died)
                raise NodeError(f"deleting {name}: {os.strerror(e.code)}") from None
        return True


def create_endpoint_link(mode, names, network_link, parent=None, mtu=None):
    """Create a container's interface in the node's namespace, named `names.container`.

    veth: the pair (`names.host` enslaved to the network's bridge, up) and its peer.
    ipvlan: a slave of `parent`. Returns the name of the node-side interface the policy is
    attached to before the container runs (the veth's node end), or None for ipvlan.
    """
    with IPRoute() as ip:
        for stale in (names.host, names.container):  # left over by a crash between create and use
            index = _lookup(ip, stale)
            if index is not None:
                with contextlib.suppress(NetlinkError):
                    ip.link("del", index=index)
        if is_ipvlan(mode):
            parent_index = _lookup(ip, parent)
            if parent_index is None:
                raise NodeError(f"parent interface {parent} does not exist")
            _netlink_call(f"creating ipvlan slave {names.container} of {parent}", ip.link, "add",
                          ifname=names.container, kind="ipvlan", link=parent_index,
                          ipvlan_mode=IPVLAN_MODES[mode])
            return None
        bridge = _lookup(ip, network_link)
        if bridge is None:
            raise NodeError(f"network bridge {network_link} is missing (was the network deleted?)")
        extra = {"mtu": mtu} if mtu else {}
        _netlink_call(f"creating veth {names.host}", ip.link, "add", ifname=names.host, kind="veth",
                      peer={"ifname": names.container, **extra}, **extra)
        host = _lookup(ip, names.host)
        _netlink_call(f"attaching {names.host} to {network_link}", ip.link, "set", index=host,
                      master=bridge, state="up")
        return names.host


def delete_endpoint_link(names):
    """Remove whatever is left of a container's interface in the node's namespace."""
    gone = False
    for name in (names.host, names.container):
        gone = delete_link(name) or gone
    return gone


def in_netns(netns, func, *args):
    """func(ip, *args) with an IPRoute of the namespace at path `netns` (never creates one).

    Entered the one way bayctl enters namespaces (netns.run_in_netns: a thread that setns(2)s
    and ends), not pyroute2's IPRoute(netns=...), which forks a helper process per socket."""
    def here():
        with IPRoute() as ip:  # opened on the thread inside `netns`: its socket belongs there
            return func(ip, *args)

    return run_in_netns(netns, here)


def move_and_configure(ifname, netns, new_name, address_cidr, gateway=None):
    """Move `ifname` into `netns`, rename it, address it, bring it and lo up, default via gateway.

    The CNI path (Docker does this part itself). The default route is added only if the
    namespace has none yet: a container on two networks keeps the first network's default
    and reaches the second network through its connected subnet route.
    """
    iface = ipaddress.ip_interface(address_cidr)
    with IPRoute() as ip:
        index = _lookup(ip, ifname)
        if index is None:
            raise NodeError(f"interface {ifname} vanished before it was moved")
        fd = os.open(netns, os.O_RDONLY)
        try:
            _netlink_call(f"moving {ifname} into {netns}", ip.link, "set", index=index, net_ns_fd=fd)
        finally:
            os.close(fd)
    return in_netns(netns, _configure, ifname, netns, new_name, iface, gateway)


def _configure(ns, ifname, netns, new_name, iface, gateway):
    index = _lookup(ns, ifname)
    if _lookup(ns, new_name) is not None:
        raise NodeError(f"{netns} already has an interface {new_name}")
    _netlink_call(f"renaming {ifname} to {new_name}", ns.link, "set", index=index, ifname=new_name)
    _netlink_call(f"addressing {new_name}", ns.addr, "add", index=index, address=str(iface.ip),
                  prefixlen=iface.network.prefixlen)
    _netlink_call(f"bringing {new_name} up", ns.link, "set", index=index, state="up")
    lo = _lookup(ns, "lo")
    if lo is not None:
        ns.link("set", index=lo, state="up")
    if gateway and not ns.get_default_routes(family=2):
        _netlink_call(f"default route via {gateway}", ns.route, "add", dst="0.0.0.0/0",
                      gateway=str(gateway), oif=index)
    return {"name": new_name, "mac": ns.get_links(index)[0].get_attr("IFLA_ADDRESS")}


def describe_in_netns(netns, ifname):
    """What a container interface looks like now: {"mac", "addresses": [cidr], "up"}, or None."""
    return in_netns(netns, _describe, ifname)


def _describe(ns, ifname):
    index = _lookup(ns, ifname)
    if index is None:
        return None
    link = ns.get_links(index)[0]
    info = link.get_attr("IFLA_LINKINFO")
    addresses = [f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}" for a in ns.get_addr(index=index, family=2)]
    return {
        "mac": link.get_attr("IFLA_ADDRESS"),
        "addresses": addresses,
        "up": bool(link["flags"] & 1),
        "kind": info.get_attr("IFLA_INFO_KIND") if info else None,
    }


def delete_in_netns(netns, ifname):
    """Delete a container's interface inside its namespace (deleting a veth end deletes its peer).

    Missing namespace or interface is not an error (CNI DEL and Docker Leave are idempotent).
    """
    if not netns or not os.path.exists(netns):
        return False
    try:
        return in_netns(netns, _delete, ifname)
    except NodeError:
        return False


def _delete(ns, ifname):
    index = _lookup(ns, ifname)
    if index is None:
        return False
    with contextlib.suppress(NetlinkError):
        ns.link("del", index=index)
    return True



def find_by_address(netns, ip):
    """The name of the interface holding `ip` inside `netns`, or None (not there yet)."""
    def holder(ns):
        for addr in ns.get_addr(family=2, address=str(ip)):
            return ns.get_links(addr["index"])[0].get_attr("IFLA_IFNAME")
        return None

    return in_netns(netns, holder)

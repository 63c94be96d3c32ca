"""What the agent must not do to the node it runs on: cut it off.

The classifier denies by default, so attaching it to the interface that carries the node's
default route (its uplink) would drop the node's own traffic: SSH, the API of the cloud,
the seeder. An endpoint request that would do that is refused unless it says it means it.
"""

import socket

from bayctl.node.netns import same_namespace

RTN_UNICAST = 1     # linux/rtnetlink.h


def is_own_namespace(netns):
    """Whether `netns` (a path, or None for "the agent's") is the agent's own namespace."""
    return netns is None or same_namespace(netns, "/proc/self/ns/net")


def uplinks():
    """Names of the interfaces of the caller's namespace that carry a default route (IPv4 or
    IPv6, any routing table, each nexthop of a multipath route)."""
    from pyroute2 import IPRoute  # a node dependency; imported here so the API layer loads without it

    indexes = set()
    with IPRoute() as ipr:
        for family in (socket.AF_INET, socket.AF_INET6):
            for route in ipr.route("dump", family=family):
                if route["dst_len"] != 0 or route.get_attr("RTA_DST") is not None:
                    continue
                if route["type"] != RTN_UNICAST:
                    continue    # "unreachable default dev lo" and the like carry no traffic
                oif = route.get_attr("RTA_OIF")
                if oif:
                    indexes.add(oif)
                for hop in route.get_attr("RTA_MULTIPATH") or ():
                    if hop.get("oif"):
                        indexes.add(hop["oif"])
    names = set()
    for index in indexes:
        try:
            names.add(socket.if_indextoname(index))
        except OSError:
            pass                # gone since the dump: it carries nothing any more
    return names

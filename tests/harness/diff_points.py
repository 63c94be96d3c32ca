"""Shared by the diff tests: the packets worth asking two policies about, and which change row
(bayctl.policy.diff.Change) covers a packet."""

from bayctl.policy import layout
from bayctl.policy.diff import PORTED
from harness.policy_strategies import interesting_ports

PROTOS = (layout.PROTO_TCP, layout.PROTO_UDP, layout.PROTO_ICMP, 47, 0)


def points(old, new):
    """(src, dst, proto, port) at every tag of both policies, an unknown tag, and every port at
    or next to a range boundary of either policy."""
    tags = sorted(set(old.groups.values()) | set(new.groups.values()) | {0, 65535})
    ports = sorted(set(interesting_ports(old)) | set(interesting_ports(new)))
    for src in tags:
        for dst in tags:
            for proto in PROTOS:
                for port in (ports if proto in PORTED else [0, 7]):
                    yield src, dst, proto, port


def covering(changes, src, dst, proto, port):
    """The change rows that cover this packet (the datapath ignores ports of portless protocols)."""
    found = []
    for change in changes:
        if (change.src_tag, change.dst_tag) != (src, dst):
            continue
        if change.proto is None:
            if proto in change.except_protos:
                continue
        elif change.proto != proto:
            continue
        if change.ports is not None and proto in PORTED and not change.ports[0] <= port <= change.ports[1]:
            continue
        found.append(change)
    return found

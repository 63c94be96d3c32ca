"""Which verdicts change between two policies, computed from what the datapath gets.

Both policies are compiled (compiler.compile_entries) and each group pair's allow entries are
read back as the datapath's lookup sees them: a packet is (source tag, destination tag, IP
protocol, destination port), the port being 0 for every protocol but TCP and UDP (classify.h's
policy_dport); it is allowed when an entry covers it (prefixlen 32: every protocol; 48: the
whole protocol; 48+n: a block of ports). Comparing those sets gives the exact packets whose
verdict changes; for reading, adjacent ports with the same change are one range, and a group
pair whose every packet changes the same way is one row ("any", "any").

Tags, not names, are what the datapath decides on (an endpoint is registered with a tag):
a group renumbered between the two policies shows as its old tag losing what its new tag
gains. Names are the new policy's, else the old one's.
"""

import bisect
import dataclasses
from typing import Dict, List, Optional, Tuple

from bayctl.policy import layout
from bayctl.policy.compiler import compile_entries

PORT_MIN, PORT_MAX = 0, 65535
ALL_PORTS = ((PORT_MIN, PORT_MAX),)
PORTED = (layout.PROTO_TCP, layout.PROTO_UDP)   # the protocols whose lookups carry a port
ALLOW, DENY = "allow", "deny"


@dataclasses.dataclass(frozen=True)
class Change:
    """Packets of one group pair whose verdict changes.

    proto: an IP protocol number, or None for "every protocol but those in `except_protos`".
    ports: (lo, hi) inclusive for TCP/UDP, None for a whole protocol (or every protocol).
    """

    src_tag: int
    dst_tag: int
    proto: Optional[int]
    ports: Optional[Tuple[int, int]]
    old: str            # ALLOW | DENY
    new: str
    except_protos: Tuple[int, ...] = ()

    def protocol_text(self) -> str:
        if self.proto is not None:
            return layout.PROTO_NAMES.get(self.proto, str(self.proto))
        if not self.except_protos:
            return "any"
        return "any but " + ",".join(layout.PROTO_NAMES.get(p, str(p)) for p in self.except_protos)

    def ports_text(self) -> str:
        if self.ports is None or self.ports == ALL_PORTS[0]:
            return "any"
        lo, hi = self.ports
        return str(lo) if lo == hi else f"{lo}-{hi}"


@dataclasses.dataclass
class _PairAllows:
    """What one group pair's entries allow: every protocol, or per protocol merged port ranges."""

    any_protocol: bool = False
    ranges: Dict[int, List[Tuple[int, int]]] = dataclasses.field(default_factory=dict)

    def ports_of(self, proto) -> List[Tuple[int, int]]:
        return list(ALL_PORTS) if self.any_protocol else self.ranges.get(proto, [])


def allows_by_pair(policy) -> Dict[Tuple[int, int], _PairAllows]:
    """(src tag, dst tag) -> what the compiled entries allow between them."""
    from bayctl.policy.compiler import merge_ranges

    pairs: Dict[Tuple[int, int], _PairAllows] = {}
    for entry in compile_entries(policy):
        allows = pairs.setdefault((entry.src_group, entry.dst_group), _PairAllows())
        if entry.prefixlen <= layout.PREFIX_GROUPS_ONLY:
            allows.any_protocol = True
        else:
            allows.ranges.setdefault(entry.proto, []).append(entry.port_range or ALL_PORTS[0])
    for allows in pairs.values():
        allows.ranges = {proto: merge_ranges(spans) for proto, spans in allows.ranges.items()}
    return pairs


def lookup(pairs, src_tag, dst_tag, proto, port) -> bool:
    """The datapath's verdict for one packet, from allows_by_pair's result (port: the packet's
    destination port; ignored, as the datapath ignores it, for protocols without ports)."""
    allows = pairs.get((src_tag, dst_tag))
    if allows is None:
        return False
    return _covers(allows.ports_of(proto), port if proto in PORTED else 0)


def diff_policies(old, new) -> List[Change]:
    """Every verdict that differs between `old` and `new` (Policy objects; None = deny all)."""
    old_pairs = allows_by_pair(old) if old is not None else {}
    new_pairs = allows_by_pair(new) if new is not None else {}
    changes = []
    for pair in sorted(set(old_pairs) | set(new_pairs)):
        before, after = old_pairs.get(pair, _PairAllows()), new_pairs.get(pair, _PairAllows())
        changes += _merge_whole_pair(pair, before, after, _pair_changes(pair, before, after))
    return changes


def _pair_changes(pair, before, after) -> List[Change]:
    src, dst = pair
    named = sorted(set(before.ranges) | set(after.ranges))
    changes = []
    for proto in named:
        old_ports, new_ports = before.ports_of(proto), after.ports_of(proto)
        if proto in PORTED:
            for lo, hi, was in _differing_spans(old_ports, new_ports):
                changes.append(Change(src, dst, proto, (lo, hi), _verdict(was), _verdict(not was)))
        else:
            was, now = _covers(old_ports, 0), _covers(new_ports, 0)
            if was != now:
                changes.append(Change(src, dst, proto, None, _verdict(was), _verdict(now)))
    if before.any_protocol != after.any_protocol:
        was, now = _verdict(before.any_protocol), _verdict(after.any_protocol)
        changes.append(Change(src, dst, None, None, was, now, except_protos=tuple(named)))
    return changes


def _merge_whole_pair(pair, before, after, changes) -> List[Change]:
    """One 'any protocol, any port' row when every packet of the pair changes the same way."""
    if not changes or before.any_protocol == after.any_protocol:
        return changes
    directions = {(change.old, change.new) for change in changes}
    whole = all(change.ports in (None, ALL_PORTS[0]) for change in changes)
    named = set(before.ranges) | set(after.ranges)
    if len(directions) == 1 and whole and len(changes) == len(named) + 1:
        old, new = directions.pop()
        return [Change(pair[0], pair[1], None, None, old, new)]
    return changes


def _verdict(allowed: bool) -> str:
    return ALLOW if allowed else DENY


def _covers(ranges, port) -> bool:
    index = bisect.bisect_right(ranges, (port, PORT_MAX + 1)) - 1
    return index >= 0 and ranges[index][0] <= port <= ranges[index][1]


def _differing_spans(old_ranges, new_ranges):
    """(lo, hi, old_allowed) of the maximal port spans where the two range lists disagree."""
    cuts = {PORT_MIN, PORT_MAX + 1}
    for lo, hi in list(old_ranges) + list(new_ranges):
        cuts.update((lo, hi + 1))
    cuts = sorted(cut for cut in cuts if PORT_MIN <= cut <= PORT_MAX + 1)
    spans = []
    for lo, next_lo in zip(cuts, cuts[1:]):
        was, now = _covers(old_ranges, lo), _covers(new_ranges, lo)
        if was == now:
            continue
        if spans and spans[-1][1] == lo - 1 and spans[-1][2] == was:
            spans[-1] = (spans[-1][0], next_lo - 1, was)
        else:
            spans.append((lo, next_lo - 1, was))
    return spans


def group_namer(old, new):
    """tag -> the name to print: the new policy's, else the old one's, else the tag."""

    def name(tag):
        for policy in (new, old):
            found = policy.group_name(tag) if policy is not None else None
            if found:
                return found
        return "external" if tag == layout.GROUP_EXTERNAL else str(tag)

    return name


def as_rows(changes, name):
    """(from, to, protocol, ports, old, new) per change, for tables."""
    return [(name(c.src_tag), name(c.dst_tag), c.protocol_text(), c.ports_text(), c.old, c.new)
            for c in changes]


def as_document(old, new, changes, name):
    """The JSON form: both digests and every change with names and tags."""
    return {
        "old": old.digest if old is not None else None,
        "new": new.digest if new is not None else None,
        "changes": [
            {"from": name(c.src_tag), "from_tag": c.src_tag, "to": name(c.dst_tag), "to_tag": c.dst_tag,
             "protocol": c.protocol_text(), "proto": c.proto, "except_protos": list(c.except_protos),
             "ports": c.ports_text(), "port_range": list(c.ports) if c.ports else None,
             "old": c.old, "new": c.new}
            for c in changes
        ],
    }

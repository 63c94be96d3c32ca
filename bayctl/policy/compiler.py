"""Policy model -> allow entries of the datapath's LPM policy map (see bayctl_maps.h).

Each rule becomes, for every (source tag, destination tag) pair it names:
  - no ports:           one prefixlen-32 entry (any protocol, any port);
  - a protocol alone:   one prefixlen-48 entry (icmp is always this form);
  - port ranges:        the fewest aligned port prefixes (prefixlen 48 + n) that cover
                        exactly the union of the rule's ranges for that protocol.
intraGroup allow adds a prefixlen-32 {g, g} entry per group. Entries with the same key
are merged, keeping the lowest rule id (rules before intraGroup). The datapath looks
up with prefixlen 64 and the packet's values; any match allows.
"""

import collections
import struct

from bayctl.errors import PolicyError
from bayctl.policy import layout, model

# Rule ids: rules are numbered from 1 in file order; intraGroup entries live in their
# own id space above every possible rule number (base + the group's tag).
RULE_ID_INTRA_GROUP = 1 << 31

_PORT_BITS = 16
_KEY_BITS = layout.POLICY_FULL_PREFIX
_PREFIXLEN = struct.Struct("=I")            # struct bayctl_policy_key.prefixlen: host order
_KEY_DATA = struct.Struct("!HHBBH")         # src_group, dst_group, proto, pad, dport: network order


class Entry(collections.namedtuple("Entry", "prefixlen src_group dst_group proto dport rule_id")):
    """One allow entry in plain integers (host order); `key()`/`value()` give the map's structs."""

    __slots__ = ()

    def key(self) -> layout.PolicyKey:
        return layout.PolicyKey.make(self.prefixlen, self.src_group, self.dst_group, self.proto, self.dport)

    def key_bytes(self) -> bytes:
        """The key's bytes as the map stores them: prefixlen host order, the rest network order."""
        return _PREFIXLEN.pack(self.prefixlen) + _KEY_DATA.pack(self.src_group, self.dst_group, self.proto, 0,
                                                                self.dport)

    def value(self) -> layout.PolicyValue:
        return layout.PolicyValue(rule_id=self.rule_id)

    @property
    def port_range(self):
        """(lo, hi) of destination ports matched, or None for any port."""
        if self.prefixlen <= layout.PREFIX_PROTO_ONLY:
            return None
        span = 1 << (_KEY_BITS - self.prefixlen)
        return self.dport, self.dport + span - 1

    def proto_text(self) -> str:
        if self.prefixlen <= layout.PREFIX_GROUPS_ONLY:
            return "any"
        return layout.PROTO_NAMES.get(self.proto, str(self.proto))

    def ports_text(self) -> str:
        port_range = self.port_range
        if port_range is None:
            return "any"
        lo, hi = port_range
        return str(lo) if lo == hi else f"{lo}-{hi}"

    def rule_text(self) -> str:
        return describe_rule_id(self.rule_id)


def describe_rule_id(rule_id: int) -> str:
    """'rules[0]' for rule id 1, 'intraGroup' for intraGroup entries."""
    if rule_id >= RULE_ID_INTRA_GROUP:
        return "intraGroup"
    return f"rules[{rule_id - 1}]"


def compile_policy(policy: model.Policy):
    """The policy as [(layout.PolicyKey, layout.PolicyValue)], ready for Datapath.replace_policy."""
    # from_buffer_copy of packed bytes is the fast way to build many keys (100k in ~0.3 s);
    # tests check the bytes equal PolicyKey.make's.
    key_from, value = layout.PolicyKey.from_buffer_copy, layout.PolicyValue
    return [(key_from(entry.key_bytes()), value(entry.rule_id)) for entry in compile_entries(policy)]


def compile_entries(policy: model.Policy):
    """The policy as a sorted list of Entry (plain integers): what compile_policy encodes."""
    entries = {}     # (prefixlen, src, dst, proto, dport) -> rule id; first writer wins
    for index, rule in enumerate(policy.rules):
        rule_id = index + 1
        destinations = policy.expand(rule.destinations)
        pairs = [(src, dst) for src in policy.expand(rule.sources) for dst in destinations]
        matches = _rule_matches(rule)
        if len(pairs) * len(matches) > layout.MAX_POLICY:
            raise _too_many(policy, rule, index)
        for src, dst in pairs:
            for prefixlen, proto, dport in matches:
                entries.setdefault((prefixlen, src, dst, proto, dport), rule_id)
        if len(entries) > layout.MAX_POLICY:
            raise _too_many(policy, rule, index)
    if policy.intra_group == model.INTRA_ALLOW:
        for tag in sorted(policy.named_groups.values()):
            entries.setdefault((layout.PREFIX_GROUPS_ONLY, tag, tag, layout.PROTO_ANY, 0),
                               RULE_ID_INTRA_GROUP + tag)
        if len(entries) > layout.MAX_POLICY:
            raise PolicyError(f"policy compiles to more than {layout.MAX_POLICY} entries (the map's size)",
                              path=policy.source, field="intraGroup")
    # Listed by group pair, then protocol and port: the order people read them in.
    ordered = sorted(entries.items(), key=lambda item: (*item[0][1:], item[0][0]))
    return [Entry(prefixlen, src, dst, proto, dport, rule_id)
            for (prefixlen, src, dst, proto, dport), rule_id in ordered]


def _rule_matches(rule: model.Rule):
    """(prefixlen, proto, dport) of every prefix one group pair of this rule needs."""
    if not rule.ports:
        return [(layout.PREFIX_GROUPS_ONLY, layout.PROTO_ANY, 0)]
    by_proto = collections.defaultdict(list)
    for spec in rule.ports:
        by_proto[spec.proto_number].append(spec)
    matches = []
    for proto, specs in sorted(by_proto.items()):
        if any(spec.any_port for spec in specs):
            matches.append((layout.PREFIX_PROTO_ONLY, proto, 0))
            continue
        for lo, hi in merge_ranges((spec.lo, spec.hi) for spec in specs):
            for port, bits in port_prefixes(lo, hi):
                matches.append((layout.PREFIX_PROTO_ONLY + bits, proto, port))
    return matches


def merge_ranges(ranges):
    """Union of inclusive (lo, hi) ranges as sorted, disjoint, non-adjacent ranges."""
    merged = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [tuple(item) for item in merged]


def port_prefixes(lo, hi):
    """The fewest (port, bits) prefixes whose ports are exactly lo..hi.

    Greedy from the low end: take the largest aligned block starting at `lo` that does
    not pass `hi`. Each block is 2**k ports sharing the top 16-k bits.
    """
    prefixes = []
    while lo <= hi:
        size = (lo & -lo) if lo else 1 << _PORT_BITS
        while size > hi - lo + 1:
            size >>= 1
        prefixes.append((lo, _PORT_BITS + 1 - size.bit_length()))
        lo += size
    return prefixes


def _too_many(policy, rule, index):
    return PolicyError(f"policy compiles to more than {layout.MAX_POLICY} entries (the map's size)",
                       path=policy.source, line=rule.line, field=f"rules[{index}]")

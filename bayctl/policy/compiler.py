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
from bayctl.gcpause import gc_paused
from bayctl.policy import layout, model

# Rule ids: rules are numbered from 1 in file order; intraGroup entries live in their
# own id space above every possible rule number (base + the group's tag).
RULE_ID_INTRA_GROUP = 1 << 31

_PORT_BITS = 16
_KEY_BITS = layout.POLICY_FULL_PREFIX
_PREFIXLEN = struct.Struct("=I")            # struct bayctl_policy_key.prefixlen: host order
_KEY_DATA = struct.Struct("!HHBBH")         # src_group, dst_group, proto, pad, dport: network order
_KEY_GROUPS = struct.Struct("!HH")          # the same key, cut where a rule's keys differ per pair
_KEY_TAIL = struct.Struct("!BBH")
_VALUE = struct.Struct("=I")                # struct bayctl_policy_value.rule_id: host order


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


class PackedPolicy(collections.namedtuple("PackedPolicy", "keys values count")):
    """The allow entries as the map stores them: `count` keys (12 bytes each, see key_bytes)
    and `count` values (a host-order u32 rule id each), back to back, in no particular order.
    Datapath.replace_policy takes this as it is: no Python object per entry on the way."""

    __slots__ = ()


def compile_policy(policy: model.Policy):
    """The policy as [(layout.PolicyKey, layout.PolicyValue)], ready for Datapath.replace_policy."""
    # from_buffer_copy of packed bytes is the fast way to build many keys (100k in ~0.3 s);
    # tests check the bytes equal PolicyKey.make's.
    key_from, value = layout.PolicyKey.from_buffer_copy, layout.PolicyValue
    return [(key_from(entry.key_bytes()), value(entry.rule_id)) for entry in compile_entries(policy)]


def pack_policy(policy: model.Policy) -> PackedPolicy:
    """The policy's entries packed for the map: the agent's path, fast at 100k entries.

    The entries are compile_entries' (the same allow sets), but a group pair's keys are made
    by one bytes.join over the rule's pre-packed matches, so the cost per entry is C-level
    copying, not a tuple, an Entry and two ctypes structures.
    """
    with gc_paused():
        return _pack(policy)


def _pack(policy):
    keys, values, count = [], [], 0
    # _allow_sets hands out one list of matches per distinct port list: pack each once. The
    # memo holds the list too, so its id cannot be reused by another list while it is here.
    pieces_of = {}   # id(matches) -> (matches, pieces)
    for rule_id, pairs, matches in _allow_sets(policy):
        memo = pieces_of.get(id(matches))
        if memo is None:
            memo = pieces_of[id(matches)] = (matches, _key_pieces(matches))
        pieces = memo[1]
        keys.extend(_KEY_GROUPS.pack(src, dst).join(pieces) for src, dst in pairs)
        values.append(_VALUE.pack(rule_id) * (len(matches) * len(pairs)))
        count += len(matches) * len(pairs)
    return PackedPolicy(b"".join(keys), b"".join(values), count)


def _key_pieces(matches):
    """Every key is <prefixlen><src><dst><proto><pad><dport>: joining these pieces with a
    pair's <src><dst> as the separator gives all that pair's keys at once."""
    heads = [_PREFIXLEN.pack(prefixlen) for prefixlen, _, _ in matches]
    tails = [_KEY_TAIL.pack(proto, 0, dport) for _, proto, dport in matches]
    return [heads[0], *(tail + head for tail, head in zip(tails, heads[1:])), tails[-1]]


def compile_entries(policy: model.Policy):
    """The policy as a sorted list of Entry (plain integers): what compile_policy encodes."""
    entries = [(src, dst, proto, dport, prefixlen, rule_id)
               for rule_id, pairs, matches in _allow_sets(policy)
               for src, dst in pairs
               for prefixlen, proto, dport in matches]
    # Listed by group pair, then protocol and port: the order people read them in.
    entries.sort()
    return [Entry(prefixlen, src, dst, proto, dport, rule_id)
            for src, dst, proto, dport, prefixlen, rule_id in entries]


def _allow_sets(policy: model.Policy):
    """Yield (rule id, [(src, dst)], [(prefixlen, proto, dport)]): every key once, rule order.

    Each group pair of a rule gets the rule's matches, less those an earlier rule already
    gave that pair (the same key twice keeps the lowest rule id: rules before intraGroup).
    Pairs met for the first time, the usual case, share one list of matches.
    """
    given = {}      # (src, dst) -> the matches it has: the first rule's list, a set once shared
    total = 0
    matches_of = {}  # rule.ports -> matches: big policies repeat the same port list on many rules
    rules = []
    for index, rule in enumerate(policy.rules):
        matches = matches_of.get(rule.ports)
        if matches is None:
            matches = matches_of[rule.ports] = _rule_matches(rule)
        rules.append((index + 1, rule, matches))
    if policy.intra_group == model.INTRA_ALLOW:
        intra = [(layout.PREFIX_GROUPS_ONLY, layout.PROTO_ANY, 0)]
        rules += [(RULE_ID_INTRA_GROUP + tag, tag, intra) for tag in sorted(policy.named_groups.values())]
    for rule_id, rule, matches in rules:
        if rule_id >= RULE_ID_INTRA_GROUP:
            pairs, field, line = [(rule, rule)], "intraGroup", None
        else:
            destinations = policy.expand(rule.destinations)
            pairs = [(src, dst) for src in policy.expand(rule.sources) for dst in destinations]
            field, line = f"rules[{rule_id - 1}]", rule.line
        if len(pairs) * len(matches) > layout.MAX_POLICY:
            raise _too_many(policy, field, line)
        fresh = []
        for pair in pairs:
            had = given.get(pair)
            if had is None:
                given[pair] = matches
                fresh.append(pair)
                continue
            if not isinstance(had, set):
                had = given[pair] = set(had)
            new = [match for match in matches if match not in had]
            if new:
                had.update(new)
                total += len(new)
                yield rule_id, [pair], new
        if fresh:
            total += len(fresh) * len(matches)
            yield rule_id, fresh, matches
        if total > layout.MAX_POLICY:
            raise _too_many(policy, field, line)


def _rule_matches(rule: model.Rule):
    """(prefixlen, proto, dport) of every prefix one group pair of this rule needs."""
    if not rule.ports:
        return [(layout.PREFIX_GROUPS_ONLY, layout.PROTO_ANY, 0)]
    numbers = layout.PROTO_NUMBERS
    any_port, ranges = set(), collections.defaultdict(list)
    for spec in rule.ports:   # attributes, not PortSpec's properties: this loop runs per port
        if spec.lo is None:
            any_port.add(numbers[spec.proto])
        else:
            ranges[numbers[spec.proto]].append((spec.lo, spec.hi))
    matches = []
    for proto in sorted(any_port | ranges.keys()):
        if proto in any_port:
            matches.append((layout.PREFIX_PROTO_ONLY, proto, 0))
            continue
        for lo, hi in merge_ranges(ranges[proto]):
            if lo == hi:   # a single port, the common case at scale: one full-length prefix
                matches.append((_KEY_BITS, proto, lo))
            else:
                matches.extend((layout.PREFIX_PROTO_ONLY + bits, proto, port)
                               for port, bits in port_prefixes(lo, hi))
    return matches


def merge_ranges(ranges):
    """Union of inclusive (lo, hi) ranges as sorted, disjoint, non-adjacent ranges."""
    merged = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


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


def _too_many(policy, field, line):
    return PolicyError(f"policy compiles to more than {layout.MAX_POLICY} entries (the map's size)",
                       path=policy.source, line=line, field=field)

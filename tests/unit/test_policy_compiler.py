"""The compiler: the LPM entries of each example, and agreement with the policy's meaning.

The oracle below reads the policy model directly (default deny, intraGroup, rules with
their from/to and ports) and shares no code with the compiler. The LPM lookup works on
the bytes of the compiled keys, exactly as the kernel's trie compares them: the first
`prefixlen` bits of {src group, dst group, proto, pad, dport} in network order.
"""

import ctypes
import pathlib
import random

import pytest
from harness.policy_strategies import PACKET_PROTOS, PORTED_PROTOS, interesting_ports, packet_tags, policies
from hypothesis import given, settings
from hypothesis import strategies as st

from bayctl.errors import PolicyError
from bayctl.policy import (
    PackedPolicy,
    compile_entries,
    compile_policy,
    layout,
    load_policy,
    pack_policy,
    parse_policy,
)
from bayctl.policy.compiler import RULE_ID_INTRA_GROUP, merge_ranges, port_prefixes

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "bayctl" / "share" / "policies"
INTRA = "intraGroup"


# --- the independent oracle and an LPM lookup over the compiled bytes -------------------------

def oracle(policy):
    """Straight from the model: would the first packet of a flow be allowed?"""
    declared = {tag for name, tag in policy.groups.items() if name != "external"}
    every = set(policy.groups.values())
    numbers = {"tcp": 6, "udp": 17, "icmp": 1}
    rules = [
        (every if rule.sources == ("*",) else {policy.groups[name] for name in rule.sources},
         every if rule.destinations == ("*",) else {policy.groups[name] for name in rule.destinations},
         rule.ports)
        for rule in policy.rules
    ]

    def allows(src, dst, proto, port):
        if policy.intra_group == "allow" and src == dst and src in declared:
            return True
        for sources, destinations, ports in rules:
            if src not in sources or dst not in destinations:
                continue
            if not ports:
                return True
            for spec in ports:
                if numbers[spec.proto] == proto and (spec.lo is None or spec.lo <= port <= spec.hi):
                    return True
        return False

    return allows


class CompiledTrie:
    """The compiled entries as the kernel's LPM trie sees them (from the structs' bytes)."""

    def __init__(self, entries):
        # Grouped by the key's first 32 bits (the group pair) only to make lookups fast:
        # every entry must then be at least that long, which is itself asserted.
        self.by_pair = {}
        for key, value in entries:
            raw = bytes(key)
            assert len(raw) == ctypes.sizeof(layout.PolicyKey) == 12
            prefixlen = int.from_bytes(raw[:4], "little" if _little_endian() else "big")
            assert 32 <= prefixlen <= 64
            data = int.from_bytes(raw[4:], "big")
            mask = ((1 << prefixlen) - 1) << (64 - prefixlen)
            assert data & ~mask == 0, "bits past the prefix must be zero"
            self.by_pair.setdefault(data >> 32, []).append((prefixlen, data, mask, value.rule_id))

    def lookup(self, src, dst, proto, port):
        """Rule id of the longest matching prefix, or None (what the datapath does)."""
        packet = (src << 48) | (dst << 32) | (proto << 24) | port
        best = None
        for prefixlen, data, mask, rule_id in self.by_pair.get(packet >> 32, ()):
            if packet & mask == data and (best is None or prefixlen > best[0]):
                best = (prefixlen, rule_id)
        return None if best is None else best[1]


def _little_endian():
    return ctypes.c_uint32(1).value.to_bytes(4, "little") == bytes(ctypes.c_uint32(1))


def packets(policy, rng=None, random_ports=0):
    ports = interesting_ports(policy)
    if rng is not None:
        ports += [rng.randint(0, 65535) for _ in range(random_ports)]
    for src in packet_tags(policy):
        for dst in packet_tags(policy):
            for proto in PACKET_PROTOS:
                for port in (ports if proto in PORTED_PROTOS else [0]):
                    yield src, dst, proto, port


def assert_compiled_matches_oracle(policy, rng=None, random_ports=0):
    trie = CompiledTrie(compile_policy(policy))
    allows = oracle(policy)
    checked = 0
    for packet in packets(policy, rng, random_ports):
        expected = allows(*packet)
        assert (trie.lookup(*packet) is not None) == expected, f"packet {packet}: oracle says {expected}"
        assert policy.allows(*packet) == expected
        checked += 1
    return checked


def table(policy):
    """Entries as readable tuples: (src, dst, proto, ports, prefixlen, rule)."""
    return [
        (policy.group_name(e.src_group), policy.group_name(e.dst_group), e.proto_text(), e.ports_text(),
         e.prefixlen, INTRA if e.rule_id >= RULE_ID_INTRA_GROUP else e.rule_id)
        for e in compile_entries(policy)
    ]


# --- the examples ------------------------------------------------------------------------

def test_web_db_entries():
    assert sorted(table(load_policy(EXAMPLES / "web-db.yaml"))) == sorted([
        ("web", "db", "tcp", "5432", 64, 1),
        ("external", "web", "tcp", "80", 64, 2),
        ("web", "web", "any", "any", 32, INTRA),
        ("db", "db", "any", "any", 32, INTRA),
    ])


def test_gist_numeric_entries_are_the_gists_five_pairs():
    assert sorted(table(load_policy(EXAMPLES / "gist-numeric.yaml"))) == sorted([
        ("tag100", "external", "any", "any", 32, 1),
        ("external", "tag100", "any", "any", 32, 2),
        ("tag100", "tag100", "any", "any", 32, 3),
        ("tag100", "tag200", "any", "any", 32, 4),
        ("tag200", "tag100", "any", "any", 32, 5),
    ])
    tags = {(e.src_group, e.dst_group) for e in compile_entries(load_policy(EXAMPLES / "gist-numeric.yaml"))}
    assert tags == {(100, 0), (0, 100), (100, 100), (100, 200), (200, 100)}


def test_netgroups_entries():
    assert table(load_policy(EXAMPLES / "netgroups.yaml")) == [
        ("star-1", "star-1", "any", "any", 32, INTRA),
        ("star-2", "star-2", "any", "any", 32, INTRA),
    ]


def test_stars_entries():
    everyone = ["external", "management-ui", "client", "frontend", "backend"]
    expected = [("management-ui", peer, "tcp", "9000", 64, 1) for peer in ("client", "frontend", "backend")]
    expected += [("client", "frontend", "tcp", "9001", 64, 2), ("frontend", "backend", "tcp", "9001", 64, 3)]
    expected += [(peer, "management-ui", "tcp", "9001", 64, 4) for peer in everyone]
    expected += [(group, group, "any", "any", 32, INTRA) for group in everyone[1:]]
    assert sorted(table(load_policy(EXAMPLES / "stars.yaml")), key=str) == sorted(expected, key=str)


@pytest.mark.parametrize("name", ["web-db.yaml", "gist-numeric.yaml", "netgroups.yaml", "stars.yaml"])
def test_examples_agree_with_oracle(name):
    assert assert_compiled_matches_oracle(load_policy(EXAMPLES / name), random.Random(name), 50) > 100


def test_scenarios_read_like_the_seeds():
    web_db = CompiledTrie(compile_policy(load_policy(EXAMPLES / "web-db.yaml")))
    assert web_db.lookup(100, 200, 6, 5432) == 1          # web reaches db on 5432
    assert web_db.lookup(100, 200, 6, 5433) is None       # ...and on nothing else
    assert web_db.lookup(200, 100, 6, 80) is None         # db cannot reach web
    assert web_db.lookup(0, 100, 6, 80) == 2              # the outside reaches web on 80
    assert web_db.lookup(0, 200, 6, 5432) is None         # ...but never db
    gist = CompiledTrie(compile_policy(load_policy(EXAMPLES / "gist-numeric.yaml")))
    assert gist.lookup(200, 200, 1, 0) is None            # {200 200} is not in the gist's table
    assert gist.lookup(200, 100, 17, 53) == 5


# --- port ranges -------------------------------------------------------------------------

def minimal_cover_size(lo, hi, start=0, bits=16):
    """Size of the smallest prefix cover of lo..hi, by walking the binary trie of ports."""
    end = start + (1 << bits) - 1
    if end < lo or start > hi:
        return 0
    if lo <= start and end <= hi:
        return 1
    half = 1 << (bits - 1)
    return minimal_cover_size(lo, hi, start, bits - 1) + minimal_cover_size(lo, hi, start + half, bits - 1)


def covered(prefixes):
    ports = set()
    for port, bits in prefixes:
        ports.update(range(port, port + (1 << (16 - bits))))
    return ports


def test_port_prefix_examples():
    assert port_prefixes(5432, 5432) == [(5432, 16)]
    assert port_prefixes(8000, 8191) == [(8000, 10), (8064, 9)]
    assert port_prefixes(0, 65535) == [(0, 0)]
    assert len(port_prefixes(1, 65535)) == 16


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 65535), st.integers(0, 65535))
def test_port_prefixes_cover_exactly_and_minimally(a, b):
    lo, hi = min(a, b), max(a, b)
    prefixes = port_prefixes(lo, hi)
    assert covered(prefixes) == set(range(lo, hi + 1))
    assert sum(1 << (16 - bits) for _port, bits in prefixes) == hi - lo + 1    # no overlaps
    assert len(prefixes) == minimal_cover_size(lo, hi)


def test_merge_ranges():
    assert merge_ranges([(85, 100), (80, 90), (101, 101), (200, 300)]) == [(80, 101), (200, 300)]


def test_rule_ranges_are_merged_before_decomposing():
    policy = parse_policy(
        "apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups: {a: 1, b: 2}\nintraGroup: deny\n"
        "rules: [{from: a, to: b, ports: [tcp/80-90, tcp/85-100, tcp/101, udp/53, udp]}]\n"
    )
    entries = compile_entries(policy)
    assert covered((e.dport, e.prefixlen - 48) for e in entries if e.proto == 6) == set(range(80, 102))
    assert len([e for e in entries if e.proto == 6]) == minimal_cover_size(80, 101)
    assert [(e.prefixlen, e.dport) for e in entries if e.proto == 17] == [(48, 0)]   # udp alone wins


# --- ids and merging ---------------------------------------------------------------------

HEAD = "apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups: {web: 100, db: 200}\n"


def test_duplicate_entries_merge_keeping_the_first_rule():
    policy = parse_policy(HEAD + "rules:\n- {from: web, to: db, ports: [tcp/80]}\n"
                                 "- {from: web, to: [db, web], ports: [tcp/80]}\n- {from: web, to: web}\n")
    rows = table(policy)
    assert rows.count(("web", "db", "tcp", "80", 64, 1)) == 1
    assert ("web", "db", "tcp", "80", 64, 2) not in rows
    assert ("web", "web", "tcp", "80", 64, 2) in rows
    assert ("web", "web", "any", "any", 32, 3) in rows            # the rule, not intraGroup, owns it
    assert ("db", "db", "any", "any", 32, INTRA) in rows
    keys = [bytes(key) for key, _value in compile_policy(policy)]
    assert len(keys) == len(set(keys))


def test_intra_group_ids_are_their_own_space():
    entries = compile_entries(parse_policy(HEAD))
    assert {e.rule_id for e in entries} == {RULE_ID_INTRA_GROUP + 100, RULE_ID_INTRA_GROUP + 200}
    assert compile_entries(parse_policy(HEAD + "intraGroup: deny\n")) == []


def test_keys_are_network_order():
    key, value = compile_policy(parse_policy(HEAD + "intraGroup: deny\nrules: [{from: web, to: db, "
                                                     "ports: [tcp/5432]}]\n"))[0]
    assert bytes(key)[4:] == bytes([0, 100, 0, 200, 6, 0, 0x15, 0x38])
    assert key.prefixlen == 64 and value.rule_id == 1


@pytest.mark.parametrize("compile_", [compile_entries, pack_policy], ids=["entries", "packed"])
def test_too_many_entries_names_the_rule(compile_):
    groups = ", ".join(f"g{i}: {i + 1}" for i in range(600))
    text = f"apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups: {{{groups}}}\n"
    text += "rules:\n- {from: '*', to: '*'}\n"
    with pytest.raises(PolicyError) as caught:
        compile_(parse_policy(text, source="big.yaml"))
    assert str(caught.value).startswith("big.yaml:5: rules[0]: policy compiles to more than 262144 entries")


# --- random policies ---------------------------------------------------------------------

@settings(max_examples=120, deadline=None)
@given(policies(), st.randoms(use_true_random=False))
def test_random_policies_agree_with_oracle(policy, rng):
    assert assert_compiled_matches_oracle(policy, rng, 20) > 0


def test_packed_keys_equal_layout_make():
    policy = load_policy(EXAMPLES / "stars.yaml")
    compiled = compile_policy(policy)
    for entry, (key, value) in zip(compile_entries(policy), compiled):
        assert bytes(key) == bytes(entry.key())
        assert (key.prefixlen, value.rule_id) == (entry.prefixlen, entry.rule_id)
        assert isinstance(key, layout.PolicyKey) and isinstance(value, layout.PolicyValue)


# --- the agent's packed form -------------------------------------------------------------

def packed_pairs(packed):
    """A PackedPolicy as {key bytes: rule id}, with no key twice."""
    key_size, value_size = ctypes.sizeof(layout.PolicyKey), ctypes.sizeof(layout.PolicyValue)
    assert len(packed.keys) == packed.count * key_size and len(packed.values) == packed.count * value_size
    pairs = {}
    for index in range(packed.count):
        key = packed.keys[index * key_size:(index + 1) * key_size]
        assert key not in pairs, f"key {key.hex()} packed twice"
        pairs[key] = layout.PolicyValue.from_buffer_copy(packed.values, index * value_size).rule_id
    return pairs


def compiled_pairs(policy):
    return {bytes(key): value.rule_id for key, value in compile_policy(policy)}


@settings(max_examples=150, deadline=None)
@given(policies())
def test_packed_policy_is_exactly_the_compiled_entries(policy):
    assert packed_pairs(pack_policy(policy)) == compiled_pairs(policy)


def test_packed_policy_keeps_the_first_rule_of_a_shared_key_and_shares_port_lists():
    policy = parse_policy(HEAD + "rules:\n- {from: web, to: db, ports: [tcp/80, udp/53]}\n"
                                 "- {from: '*', to: '*', ports: [tcp/80, udp/53]}\n"
                                 "- {from: web, to: db, ports: [tcp/80-81, icmp]}\n- {from: web, to: web}\n")
    packed = packed_pairs(pack_policy(policy))
    assert packed == compiled_pairs(policy)
    web_db_80 = layout.PolicyKey.make(64, 100, 200, layout.PROTO_TCP, 80)
    assert packed[bytes(web_db_80)] == 1
    assert packed[bytes(layout.PolicyKey.make(64, 200, 100, layout.PROTO_TCP, 80))] == 2
    # 80-81 is one 2-port prefix: a key of its own, so rule 3 owns it
    assert packed[bytes(layout.PolicyKey.make(63, 100, 200, layout.PROTO_TCP, 80))] == 3


def test_packed_policy_of_nothing_allowed_is_empty():
    packed = pack_policy(parse_policy(HEAD + "intraGroup: deny\n"))
    assert packed == PackedPolicy(b"", b"", 0)


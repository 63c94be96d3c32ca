"""The policy key's meaning, checked against the kernel's own LPM trie (root: creates BPF maps).

bayctl_maps.h lays the key out big-endian as {src group, dst group, proto, pad, dport} so that
a prefix of it reads "these groups / this protocol / these ports". Random policies are written
with the datapath's own packing and batch fill, then the kernel is asked, with the full-length
key the classifier uses, which entry answers; a plain-Python model of "longest prefix whose
leading bits match" must agree, for hits and misses alike.
"""

import ctypes
import os

import pytest
from harness.prereq import require_root
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bayctl.node import datapath, libbpf
from bayctl.policy import layout

pytestmark = pytest.mark.root

GROUPS = st.sampled_from([0, 1, 2, 3, 0x100, 0xFFFF])
PROTOS = st.sampled_from([layout.PROTO_TCP, layout.PROTO_UDP, layout.PROTO_ICMP, 47])
PORTS = st.sampled_from([0, 1, 22, 53, 80, 443, 5432, 8079, 8080, 8087, 8088, 65535])
DATA_BITS = layout.POLICY_FULL_PREFIX


def data_of(src, dst, proto, port):
    return (src << 48) | (dst << 32) | (proto << 24) | port


def masked(data, prefixlen):
    return data >> (DATA_BITS - prefixlen) << (DATA_BITS - prefixlen) if prefixlen else 0


@st.composite
def entries(draw):
    """A policy: group-pair, protocol and port-prefix entries, unique per trie node."""
    chosen = {}
    for _ in range(draw(st.integers(0, 40))):
        src, dst, proto, port = draw(GROUPS), draw(GROUPS), draw(PROTOS), draw(PORTS)
        prefixlen = draw(st.sampled_from([layout.PREFIX_GROUPS_ONLY, layout.PREFIX_PROTO_ONLY,
                                          layout.PREFIX_PROTO_ONLY + draw(st.integers(1, 16))]))
        data = masked(data_of(src, dst, proto, port), prefixlen)   # canonical: one entry per node
        chosen[(prefixlen, data)] = len(chosen) + 1
    return chosen


def key_of(prefixlen, data):
    return layout.PolicyKey.make(prefixlen, data >> 48, (data >> 32) & 0xFFFF, (data >> 24) & 0xFF,
                                 data & 0xFFFF)


def model(policy, query):
    """The rule id of the longest prefix covering `query`, or None (deny)."""
    best = None
    for (prefixlen, data), rule_id in policy.items():
        if masked(query, prefixlen) == data and (best is None or prefixlen > best[0]):
            best = (prefixlen, rule_id)
    return best and best[1]


@pytest.fixture(scope="module")
def kernel_maps():
    require_root()
    libbpf.lib()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policy=entries(), queries=st.lists(st.tuples(GROUPS, GROUPS, PROTOS, PORTS), min_size=1, max_size=30))
def test_kernel_lookup_agrees_with_prefix_model(kernel_maps, policy, queries):
    pairs = [(key_of(prefixlen, data), layout.PolicyValue(rule_id))
             for (prefixlen, data), rule_id in policy.items()]
    keys, values, count = datapath._policy_arrays(pairs)
    fd = libbpf.map_create(libbpf.MAP_TYPE_LPM_TRIE, "bdp_lpm_test", ctypes.sizeof(layout.PolicyKey),
                           ctypes.sizeof(layout.PolicyValue), layout.MAX_POLICY, libbpf.BPF_F_NO_PREALLOC)
    try:
        datapath._fill(fd, keys, values, count)
        # every query is asked with the probe-like exact data plus the policy-relevant entries
        asked = [data_of(*q) for q in queries] + [data for _, data in policy]
        for query in asked:
            found = layout.PolicyValue()
            hit = libbpf.map_lookup(fd, key_of(DATA_BITS, query), found)
            assert (found.rule_id if hit else None) == model(policy, query), hex(query)
    finally:
        os.close(fd)

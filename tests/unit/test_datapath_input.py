"""The datapath refuses bad input with one clear line before touching the kernel (no root needed)."""

import pytest

from bayctl.errors import NodeError
from bayctl.node import datapath, libbpf
from bayctl.policy import layout

NOWHERE = "/nonexistent/bayctl-bdp-unit"


def good(i=0):
    return layout.PolicyKey.make(64, 1, 2, layout.PROTO_TCP, 80 + i), layout.PolicyValue(rule_id=i)


@pytest.mark.parametrize("bad, message", [
    ((1, 2), r"entry 2: expected \(PolicyKey, PolicyValue\), got \(int, int\)"),
    (("only",), r"entry 2: .*got \('only',\)"),
    (None, r"entry 2: .*got None"),
    ((layout.PolicyValue(1), layout.PolicyKey()), r"entry 2: .*got \(PolicyValue, PolicyKey\)"),
    ((layout.PolicyKey.make(65, 1, 2, 6, 80), layout.PolicyValue(1)), r"entry 2: prefixlen 65"),
])
def test_bad_policy_entries_are_named(bad, message):
    with pytest.raises(NodeError, match=message):
        datapath._policy_arrays([good(0), good(1), bad])


def test_pad_must_be_zero():
    key, value = good()
    key.pad = 7
    with pytest.raises(NodeError, match="entry 0: .*pad 7"):
        datapath._policy_arrays([(key, value)])


def test_too_many_entries():
    with pytest.raises(NodeError, match="at most 262144"):
        datapath._policy_arrays([good()] * (layout.MAX_POLICY + 1))


def test_entries_pack_byte_for_byte():
    entries = [good(i) for i in range(1000)]
    keys, values, count = datapath._policy_arrays(iter(entries))   # any iterable
    assert count == 1000
    assert bytes(keys) == b"".join(bytes(k) for k, _ in entries)
    assert bytes(values) == b"".join(bytes(v) for _, v in entries)
    assert datapath._policy_arrays([]) == (None, None, 0)


@pytest.mark.parametrize("ip, group, ifindex, message", [
    ("fe80::1", 1, 0, "not an IPv4 address"),
    ("10.0.0.300", 1, 0, "not an IPv4 address"),
    ("10.0.0.1", 0, 0, "group must be 1..65535"),
    ("10.0.0.1", 65536, 0, "group must be 1..65535"),
    ("10.0.0.1", "web", 0, "group must be 1..65535"),
    ("10.0.0.1", True, 0, "group must be 1..65535"),
    ("10.0.0.1", 5, -1, "ifindex must be"),
])
def test_bad_endpoints_are_refused_before_the_kernel(ip, group, ifindex, message):
    dp = datapath.Datapath(pin_dir=NOWHERE)   # nothing loaded: validation must come first
    with pytest.raises(NodeError, match=message):
        dp.set_endpoint(ip, group, ifindex=ifindex)


def test_missing_object_is_named():
    with pytest.raises(NodeError, match="datapath object not found .*make -C policy"):
        libbpf.BpfObject(NOWHERE + ".bpf.o")

"""The Python mirror (bayctl/policy/layout.py) agrees with the C layouts (bayctl_maps.h).

Structures are compared against the BTF of the compiled datapath object (what the kernel and
libbpf actually see): size, and every field's name, offset and size. Constants (pin names,
drop reasons, map sizes, protocol numbers) are compared against the header's text.
"""

import ctypes
import json
import os
import re
import subprocess

import pytest
from harness.prereq import require_tools

from bayctl.policy import layout

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER = os.path.join(ROOT, "policy", "include", "bayctl_maps.h")
SOURCE = os.path.join(ROOT, "policy", "bayctl_tc.bpf.c")


@pytest.fixture(scope="module")
def btf_types(tmp_path_factory):
    """Compile the datapath afresh (the tree's sources, not a stale build) and dump its BTF."""
    require_tools("clang", "bpftool")
    obj = tmp_path_factory.mktemp("bdp-layout") / "bayctl_tc.bpf.o"
    subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
                    "-c", SOURCE, "-o", str(obj)], check=True, capture_output=True)
    dump = subprocess.run(["bpftool", "btf", "dump", "file", str(obj), "-j"], check=True,
                          capture_output=True, text=True).stdout
    return {t["id"]: t for t in json.loads(dump)["types"]}


def _btf_size(types, type_id):
    t = types[type_id]
    if t["kind"] in ("TYPEDEF", "CONST", "VOLATILE", "RESTRICT", "TYPE_TAG"):
        return _btf_size(types, t["type_id"])
    if t["kind"] == "ARRAY":
        return t["nr_elems"] * _btf_size(types, t["type_id"])
    return t["size"]


def _btf_struct(types, name):
    found = [t for t in types.values() if t["kind"] == "STRUCT" and t["name"] == name]
    assert len(found) == 1, f"struct {name}: {len(found)} complete definitions in the BTF"
    struct = found[0]
    fields = [(m["name"], m["bits_offset"] // 8, _btf_size(types, m["type_id"])) for m in struct["members"]]
    return struct["size"], fields


def _mirror_fields(cls):
    return [(name, getattr(cls, name).offset, getattr(cls, name).size) for name, *_ in cls._fields_]


@pytest.mark.parametrize("c_name", sorted(layout.MIRRORS))
def test_struct_matches_btf(btf_types, c_name):
    cls = layout.MIRRORS[c_name]
    size, fields = _btf_struct(btf_types, c_name)
    assert ctypes.sizeof(cls) == size, f"{cls.__name__} is {ctypes.sizeof(cls)} bytes, struct {c_name} {size}"
    assert _mirror_fields(cls) == fields


def test_every_shared_struct_has_a_mirror():
    header_structs = set(re.findall(r"^struct (bayctl_\w+) \{", open(HEADER).read(), re.M))
    assert header_structs == set(layout.MIRRORS)


def _defines():
    text = open(HEADER).read()
    return {name: value.strip().strip('"') for name, value in
            re.findall(r"^#define (BAYCTL_\w+)\s+(\S+)", text, re.M)}


def test_constants_match_header():
    defines = _defines()
    pins = {k: v for k, v in defines.items() if k.startswith("BAYCTL_PIN_")}
    assert pins == {f"BAYCTL_PIN_{name[4:]}": getattr(layout, name)
                    for name in dir(layout) if name.startswith("PIN_")}
    for name in ("MAX_ENDPOINTS", "MAX_POLICY", "MAX_CONNTRACK", "MAX_GROUP_PAIRS",
                 "PROTO_ANY", "PROTO_ICMP", "PROTO_TCP", "PROTO_UDP", "POLICY_FULL_PREFIX",
                 "GROUP_EXTERNAL", "EP_LOCAL", "CT_SYN_ORIG", "CT_SYN_REPLY", "CT_SEEN_NON_SYN",
                 "CT_CLOSING_ORIG", "CT_CLOSING_REPLY", "CT_DEFAULT_TCP_SYN",
                 "CT_DEFAULT_TCP_ESTABLISHED", "CT_DEFAULT_TCP_CLOSING", "CT_DEFAULT_OTHER",
                 "EVENTS_OFF", "EVENT_DEFAULT_RATE", "EVENT_DEFAULT_BURST", "EVENT_MAX_RATE",
                 "EVENT_MAX_BURST"):
        assert int(defines[f"BAYCTL_{name}"], 0) == getattr(layout, name), name


def test_drop_reasons_match_header():
    body = re.search(r"enum bayctl_drop_reason \{(.*?)\};", open(HEADER).read(), re.S).group(1)
    enum = {name: int(value) for name, value in re.findall(r"BAYCTL_DROP_(\w+)\s*=\s*(\d+)", body)}
    count = enum.pop("REASONS")
    assert enum == {reason.name: int(reason) for reason in layout.DropReason}
    assert count == layout.DROP_REASONS


def _header_enum(name, prefix):
    body = re.search(rf"enum {name} \{{(.*?)\}};", open(HEADER).read(), re.S).group(1)
    return {n: int(v) for n, v in re.findall(rf"{prefix}(\w+)\s*=\s*(\d+)", body)}


def test_flow_event_enums_match_header():
    kinds = _header_enum("bayctl_verdict_kind", "BAYCTL_VERDICT_")
    assert kinds.pop("KINDS") == layout.VERDICT_KINDS
    assert kinds == {kind.name: int(kind) for kind in layout.VerdictKind}
    stats = _header_enum("bayctl_event_stat", "BAYCTL_EVENT_")
    assert stats.pop("STATS") == layout.EVENT_STATS
    assert stats == {stat.name: int(stat) for stat in layout.EventStat}


def test_event_ring_size_matches_header():
    size = re.search(r"#define BAYCTL_EVENT_RING_BYTES\s+\(1 << (\d+)\)", open(HEADER).read()).group(1)
    assert 1 << int(size) == layout.EVENT_RING_BYTES


def test_policy_key_is_big_endian_in_prefix_order():
    key = layout.PolicyKey.make(64, 0x0102, 0x0304, layout.PROTO_TCP, 0x0506)
    raw = bytes(key)
    assert raw[:4] == (64).to_bytes(4, "little")  # prefixlen: host order (x86-64)
    assert raw[4:] == bytes([1, 2, 3, 4, 6, 0, 5, 6])

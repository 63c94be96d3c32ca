"""Flow documents from raw ring buffer records, their filters, and how they read (no kernel)."""

import time

import pytest

from bayctl.errors import BayctlError
from bayctl.node.flows import FlowFilter, FlowLog
from bayctl.observe import text
from bayctl.policy import layout


def _event(**fields):
    event = layout.FlowEvent(time_ns=time.monotonic_ns(), netns_cookie=7, ifindex=3, rule_id=0,
                             src_group=410, dst_group=420, proto=layout.PROTO_UDP,
                             verdict=layout.VerdictKind.DENIED, reason=layout.DropReason.POLICY)
    event.saddr[:] = bytes([10, 0, 0, 1])
    event.daddr[:] = bytes([10, 0, 0, 2])
    event.sport[:] = (40000).to_bytes(2, "big")
    event.dport[:] = (53).to_bytes(2, "big")
    for name, value in fields.items():
        setattr(event, name, value)
    return event


def _log():
    names = {410: "web", 420: "db"}
    interfaces = {(3, 7): "eth0@c1"}
    return FlowLog(datapath=None, node="n1", describe_group=names.get,
                   describe_interface=lambda ifindex, cookie: interfaces.get((ifindex, cookie)))


def test_record_becomes_a_named_flow():
    flow = _log().describe(_event())
    assert {k: flow[k] for k in ("node", "interface", "src_ip", "dst_ip", "src_port", "dst_port", "proto",
                                 "from", "to", "verdict", "reason")} == {
        "node": "n1", "interface": "eth0@c1", "src_ip": "10.0.0.1", "dst_ip": "10.0.0.2", "src_port": 40000,
        "dst_port": 53, "proto": "udp", "from": "web", "to": "db", "verdict": "denied", "reason": "policy"}
    assert abs(flow["epoch"] - time.time()) < 60


def test_allowed_has_no_reason_icmp_no_ports_unknown_group_its_tag():
    flow = _log().describe(_event(verdict=layout.VerdictKind.ALLOWED, proto=layout.PROTO_ICMP, dst_group=9,
                                  ifindex=5))
    assert "reason" not in flow and flow["dst_port"] is None
    assert (flow["to"], flow["interface"]) == ("9", "if5")
    staged = _log().describe(_event(verdict=layout.VerdictKind.WOULD_DROP))
    assert (staged["verdict"], staged["reason"]) == ("would-drop", "policy")


def test_filter_by_verdict_groups_and_time():
    flow = _log().describe(_event())
    assert FlowFilter("denied", "web", "db")(flow)
    assert not FlowFilter("allowed")(flow)
    assert FlowFilter(src="410")(flow) and not FlowFilter(dst="web")(flow)
    assert not FlowFilter(since=flow["epoch"] + 1)(flow)
    with pytest.raises(ValueError, match="verdict must be one of"):
        FlowFilter("dropped")


def test_text_line_and_since():
    flow = _log().describe(_event())
    line = text.line(flow)
    assert "n1  eth0@c1  web(10.0.0.1):40000 -> db(10.0.0.2):53  udp  DENIED (policy)" in line
    assert text.parse_since("5m", 1000.0) == 700.0 and text.parse_since("2h", 10000.0) == 2800.0
    with pytest.raises(BayctlError, match="--since '5 minutes'"):
        text.parse_since("5 minutes", 0)

"""Audit mode on one node, with a real agent and real packets (root).

Four members on a bridge (web, db, web, and an unregistered `external` peer), the datapath
attached inside each registered member's namespace. Every probe is ONE UDP datagram from a
fresh socket (a new flow) to a bound sink, so each phase sends exactly the same packets and
none is answered: the three phases compare packet for packet.

  0. ACTIVE applied, nothing staged: what arrives, and the pair counters.
  1. STAGED staged beside it: the same datagrams arrive (audit never changes a verdict), the
     pair counters move exactly as in phase 0, and the audit counts say per pair how many
     would be dropped / allowed.
  2. promoted: what arrives is STAGED's verdicts, and per pair the counters moved by phase 1's
     counters plus the audit counts (would-allow became allowed, would-drop became dropped);
     and `policy diff ACTIVE STAGED` covers exactly the datagrams whose fate changed.
"""

import select
import socket

import pytest
from harness.diff_points import covering

from bayctl.node.datapath import Datapath
from bayctl.node.netns import run_in_netns
from bayctl.policy import diff, parse_policy

pytestmark = pytest.mark.root

WEB, DB = 410, 420
HEADER = "apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups: {web: 410, db: 420}\n"
ACTIVE = HEADER + """intraGroup: deny
rules:
  - {from: web, to: db, ports: [udp/5000-5009]}
  - {from: db, to: web, ports: [udp/6000]}
  - {from: external, to: web, ports: [udp/5000]}
"""
STAGED = HEADER + """intraGroup: deny
rules:
  - {from: web, to: db, ports: [udp/5005-5019]}
  - {from: web, to: web, ports: [udp/7000]}
  - {from: external, to: db, ports: [udp/5000]}
"""
PORTS = (5000, 5005, 5010, 6000, 7000)
QUIET = 1.0         # seconds without a datagram after which every sent one has arrived or never will


@pytest.fixture(scope="module")
def audit_lab(agent_lab):
    client = agent_lab.client
    client.apply_policy(ACTIVE)
    for member in agent_lab.members:
        client.remove_endpoint(member.ip)
    web1, db, web2, outside = agent_lab.members[:4]
    roles = [(web1, WEB), (db, DB), (web2, WEB), (outside, 0)]
    for member, tag in roles[:3]:
        client.add_endpoint(member.ip, tag, ifname=member.ifname, netns=member.netns)
    sinks = {}
    for member, _ in roles:
        for port in PORTS:
            sinks[(member.ip, port)] = run_in_netns(member.netns, _bound, member.ip, port)
    yield agent_lab, roles, sinks
    for sink in sinks.values():
        sink.close()
    client.discard_staged()
    for member, _ in roles[:3]:
        client.remove_endpoint(member.ip)


def _bound(ip, port):
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((ip, port))
    sink.setblocking(False)
    return sink


def _send(ip, port, payload):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, (ip, port))


def probe_all(lab, roles, sinks):
    """Send one datagram per (sender, receiver, port); return (arrived, counters moved, audit)."""
    datapath = Datapath(lab.agent.pin_dir)
    before = datapath.counters()
    sent = {}
    for sender, src_tag in roles:
        for receiver, dst_tag in roles:
            if sender is receiver:
                continue
            for port in PORTS:
                payload = f"{sender.ip}>{receiver.ip}:{port}".encode()
                sent[payload] = (src_tag, dst_tag, port)
                run_in_netns(sender.netns, _send, receiver.ip, port, payload)
    arrived = set()
    while True:
        ready, _, _ = select.select(list(sinks.values()), [], [], QUIET)
        if not ready:
            break
        for sink in ready:
            arrived.add(sink.recv(2048))
    after, audit = datapath.counters(), datapath.audit_counts()
    datapath.close()
    # Only the pairs the datagrams above make: the lab's kernels send traffic of their own when
    # they like (IGMP reports of a member that just came up, between two untagged addresses:
    # pair (0, 0)), which no phase can compare packet for packet.
    probed = {(src, dst) for src, dst, _ in sent.values()}
    moved = {}
    for pair in probed & (set(before) | set(after)):
        zero = {"allowed_packets": 0, "dropped_packets": 0}
        moved[pair] = tuple(after.get(pair, zero)[f] - before.get(pair, zero)[f]
                            for f in ("allowed_packets", "dropped_packets"))
    return arrived, {pair: counts for pair, counts in moved.items() if counts != (0, 0)}, audit, sent


def expected_arrivals(policy_text, sent):
    policy = parse_policy(policy_text)
    return {payload for payload, (src, dst, port) in sent.items() if policy.allows(src, dst, 17, port)}


def test_audit_never_changes_a_verdict_and_its_counts_are_what_promotion_then_does(audit_lab):
    lab, roles, sinks = audit_lab
    client = lab.client
    arrived0, moved0, _, sent = probe_all(lab, roles, sinks)
    assert arrived0 == expected_arrivals(ACTIVE, sent)

    staged = client.stage_policy(STAGED, source="staged.yaml")
    assert staged["digest"] == parse_policy(STAGED).digest
    assert staged["active"] == parse_policy(ACTIVE).digest
    arrived1, moved1, audit, _ = probe_all(lab, roles, sinks)
    assert arrived1 == arrived0                     # audit mode never changes a verdict
    assert moved1 == moved0
    would = {pair: (c["would_allow_packets"], c["would_drop_packets"]) for pair, c in audit.items()}
    staged_allows = expected_arrivals(STAGED, sent)
    assert sum(a for a, _ in would.values()) == len(staged_allows - arrived1) > 0
    assert sum(d for _, d in would.values()) == len(arrived1 - staged_allows) > 0
    assert all(c["would_allow_flows"] == c["would_allow_packets"] and
               c["would_drop_flows"] == c["would_drop_packets"] for c in audit.values())  # one per flow
    shown = {(p["from_tag"], p["to_tag"]): (p["would_allow_packets"], p["would_drop_packets"])
             for p in client.staged()["pairs"]}
    assert shown == would

    promoted = client.promote_staged(staged["digest"])
    assert promoted["digest"] == staged["digest"] and promoted["promoted"]
    assert client.show_policy()["digest"] == staged["digest"]
    assert client.staged()["digest"] is None        # promotion ends the staging
    arrived2, moved2, _, _ = probe_all(lab, roles, sinks)
    assert arrived2 == staged_allows
    # `policy diff ACTIVE STAGED` names exactly the probes whose fate changed, both ways.
    changes = diff.diff_policies(parse_policy(ACTIVE), parse_policy(STAGED))
    for payload, (src, dst, port) in sent.items():
        rows = [(row.old, row.new) for row in covering(changes, src, dst, 17, port)]
        fate = ("allow" if payload in arrived0 else "deny", "allow" if payload in arrived2 else "deny")
        assert rows == ([] if fate[0] == fate[1] else [fate]), payload
    for pair in set(moved1) | set(moved2) | set(would):
        allowed1, dropped1 = moved1.get(pair, (0, 0))
        would_allow, would_drop = would.get(pair, (0, 0))
        assert moved2.get(pair, (0, 0)) == (allowed1 + would_allow - would_drop,
                                            dropped1 - would_allow + would_drop), pair
    client.apply_policy(ACTIVE)


def test_staging_is_refused_whole_when_invalid_and_promote_checks_what_is_staged(audit_lab):
    from bayctl.errors import NodeError

    lab, _, _ = audit_lab
    client = lab.client
    client.discard_staged()
    with pytest.raises(NodeError, match="nothing staged on this node"):
        client.promote_staged()
    with pytest.raises(NodeError, match=r"bad\.yaml:\d+: "):
        client.stage_policy(HEADER + "rules: [{from: web, to: nowhere}]\n", source="bad.yaml")
    assert client.staged()["digest"] is None
    digest = client.stage_policy(STAGED)["digest"]
    with pytest.raises(NodeError, match="precondition failed: the staged policy is"):
        client.promote_staged("0" * 64)
    assert client.show_policy()["digest"] == parse_policy(ACTIVE).digest  # nothing promoted
    # Applying the staged policy by the ordinary path promotes it too.
    client.apply_policy(STAGED)
    assert client.staged()["digest"] is None
    client.apply_policy(ACTIVE)
    assert client.stage_policy(STAGED)["digest"] == digest
    assert client.discard_staged() == {"digest": None, "discarded": digest}
    assert not Datapath(lab.agent.pin_dir).staged_loaded()


def test_a_restarted_agent_keeps_staging_with_its_counts(audit_lab):
    lab, roles, sinks = audit_lab
    client = lab.client
    client.stage_policy(STAGED, source="staged.yaml")
    probe_all(lab, roles, sinks)
    counted = client.staged()["pairs"]
    assert counted
    lab.agent.kill()
    lab.agent.start()
    again = client.staged()
    assert (again["digest"], again["source"]) == (parse_policy(STAGED).digest, "staged.yaml")
    assert again["pairs"] == counted
    client.discard_staged()


def test_node_cli_stages_shows_and_promotes(audit_lab, tmp_path):
    from harness.fixtures_agent import bayctl

    lab, _, _ = audit_lab
    socket_path = lab.agent.socket_path
    staged_file = tmp_path / "staged.yaml"
    staged_file.write_text(STAGED)
    done = bayctl("node", "apply", "--audit", str(staged_file), "-f", "json", socket=socket_path)
    assert done.returncode == 0, done.stderr
    assert '"staged": "' + parse_policy(STAGED).digest in done.stdout
    shown = bayctl("node", "staged", "-f", "json", socket=socket_path)
    assert shown.returncode == 0 and "staged " + parse_policy(STAGED).digest[:12] in shown.stderr
    promoted = bayctl("node", "promote", "--digest", parse_policy(STAGED).digest, socket=socket_path)
    assert promoted.returncode == 0, promoted.stderr
    assert lab.client.show_policy()["digest"] == parse_policy(STAGED).digest
    nothing = bayctl("node", "discard", socket=socket_path)
    assert nothing.stdout.strip() == "nothing was staged"
    lab.client.apply_policy(ACTIVE)

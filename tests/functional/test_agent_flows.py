"""Flow events on the real kernel with a real agent: what the datapath reports matches the probes.

Probes go between two namespaces of the agent lab. Denied probes are single packets (one ICMP
echo, one UDP datagram: a TCP connect would retransmit its SYN), so each must appear exactly
once, with its groups and reason. An allowed TCP connection appears once as a new flow; its
replies and later packets never do. Under a flood the kernel's token bucket emits exactly
`burst` events when no refill is configured (counted, not timed) and counts the rest as lost.
"""

import json
import socket
import threading
import time

import pytest
from harness.fixtures_agent import measure
from harness.interrupt import popen_interruptible

from bayctl.node.netns import run_in_netns

pytestmark = pytest.mark.root

POLICY = """apiVersion: bayctl/v1
kind: GroupPolicy
groups:
  web: 410
  db: 420
rules:
  - from: web
    to: db
    ports: [tcp/5432]
"""
WEB, DB = 410, 420
DENIED_PINGS = 3
FLOOD = 300
BURST = 7


@pytest.fixture(scope="module")
def lab(agent_lab):
    agent_lab.client.apply_policy(POLICY)
    for member in agent_lab.members:
        agent_lab.client.remove_endpoint(member.ip)
    web, db = agent_lab.members[0], agent_lab.members[1]
    agent_lab.client.add_endpoint(web.ip, "web", ifname=web.ifname, netns=web.netns)
    agent_lab.client.add_endpoint(db.ip, "db", ifname=db.ifname, netns=db.netns)
    agent_lab.listen([("tcp", 5432)])
    yield agent_lab, web, db
    agent_lab.client.set_flow_limit(1000, 2000)


def _new_flows(client, before):
    """Flows recorded since `before` (a count of the history)."""
    return client.flows()[before:]


def _flows_when(client, before, count, patience=10.0):
    """The flows since `before` once `count` have arrived (the agent polls the ring buffer), or
    what arrived within `patience` seconds (the assertions then say what is missing)."""
    deadline = time.monotonic() + patience
    flows = _new_flows(client, before)
    while len(flows) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        flows = _new_flows(client, before)
    return flows


def _send_udp(netns, ip, port, count):
    def send():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(count):
                sock.sendto(b"x", (ip, port))
    run_in_netns(netns, send)


def test_each_denied_probe_appears_once_with_groups_and_reason(lab):
    agent_lab, web, db = lab
    client = agent_lab.client
    before = len(client.flows())
    jobs = [(web.netns, db.ip, ("icmp", None))] * DENIED_PINGS + [(db.netns, web.ip, ("udp", 53))]
    reached = measure(jobs, timeout=1.0)
    assert reached == [False] * (DENIED_PINGS + 1)
    flows = _new_flows(client, before)
    pings = [f for f in flows if f["proto"] == "icmp"]
    assert len(pings) == DENIED_PINGS, flows
    for flow in pings:
        assert (flow["from"], flow["to"], flow["src_ip"], flow["dst_ip"]) == ("web", "db", web.ip, db.ip)
        assert (flow["verdict"], flow["reason"], flow["from_tag"], flow["to_tag"]) == \
            ("denied", "policy", WEB, DB)
        assert flow["interface"] == f"eth0@{web.netns.rsplit('/', 1)[-1]}"
    udp = [f for f in flows if f["proto"] == "udp"]
    assert [(f["from"], f["to"], f["dst_port"], f["verdict"], f["reason"]) for f in udp] == \
        [("db", "web", 53, "denied", "policy")]


def test_allowed_new_flow_appears_once_and_replies_never(lab):
    agent_lab, web, db = lab
    client = agent_lab.client
    before = len(client.flows())
    assert measure([(web.netns, db.ip, ("tcp", 5432))], timeout=2.0) == [True]
    flows = _new_flows(client, before)
    assert [(f["from"], f["to"], f["proto"], f["dst_port"], f["verdict"]) for f in flows] == \
        [("web", "db", "tcp", 5432, "allowed")], flows
    assert flows[0]["rule_id"] > 0 and "reason" not in flows[0]


def test_filters_and_follow_stream(lab):
    agent_lab, web, db = lab
    client = agent_lab.client
    assert all(f["verdict"] == "denied" for f in client.flows(verdict="denied"))
    assert all(f["from"] == "db" for f in client.flows(**{"from": "db"}))
    stream = client.follow_flows(verdict="denied", to="db")
    got = []
    reader = threading.Thread(target=lambda: got.extend(next(stream) for _ in range(2)))
    reader.start()
    # the follower registers when its request arrives: send until it has seen two
    while reader.is_alive():
        measure([(db.netns, web.ip, ("icmp", None)), (web.netns, db.ip, ("icmp", None))], timeout=0.3)
        reader.join(0.1)
    stream.close()
    assert [(f["from"], f["to"], f["verdict"]) for f in got] == [("web", "db", "denied")] * 2


def test_flood_is_cut_to_the_bucket_and_the_rest_counted_lost(lab):
    agent_lab, web, db = lab
    client = agent_lab.client
    client.set_flow_limit(0, BURST)          # no refill: the count cannot depend on timing
    try:
        status = client.flow_status()
        before = len(client.flows())
        _send_udp(web.netns, db.ip, 9999, FLOOD)
        after = client.flow_status()
    finally:
        client.set_flow_limit(1000, 2000)
    emitted = after["kernel"]["emitted"] - status["kernel"]["emitted"]
    limited = after["kernel"]["rate_limited"] - status["kernel"]["rate_limited"]
    assert (emitted, limited) == (BURST, FLOOD - BURST)
    assert after["lost"] - status["lost"] == FLOOD - BURST
    flows = _new_flows(client, before)
    assert [(f["proto"], f["dst_port"]) for f in flows] == [("udp", 9999)] * BURST
    # the datapath kept enforcing: counters saw every packet
    drops = json.dumps(client.stats()["pairs"])
    assert '"dropped_packets"' in drops


def test_bad_limit_is_refused_in_one_line(lab):
    agent_lab, _, _ = lab
    from bayctl.errors import NodeError

    with pytest.raises(NodeError, match="rate must be an integer 0..1000000"):
        agent_lab.client.set_flow_limit(-1, 5)
    with pytest.raises(NodeError, match="unknown flows parameter.s.: bogus"):
        agent_lab.client._request("GET", "/v1/flows?bogus=1")
    with pytest.raises(NodeError, match="verdict must be one of"):
        agent_lab.client.flows(verdict="dropped")


def test_node_observe_cli_prints_history_and_follows_until_ctrl_c(lab):
    import os
    import signal
    import subprocess
    import sys

    from harness.fixtures_agent import bayctl

    agent_lab, web, db = lab
    socket_path = agent_lab.agent.socket_path
    assert measure([(web.netns, db.ip, ("tcp", 5432))], timeout=2.0) == [True]
    for _ in range(40):  # the agent polls the ring buffer: the flow shows up shortly after
        done = bayctl("node", "observe", "--no-follow", "-f", "json", "--verdict", "allowed",
                      socket=socket_path)
        assert done.returncode == 0, done.stderr
        flows = [json.loads(line) for line in done.stdout.splitlines()]
        if flows:
            break
        time.sleep(0.25)
    assert flows and {(f["from"], f["to"], f["verdict"]) for f in flows} == {("web", "db", "allowed")}

    follow = popen_interruptible([sys.executable, "-m", "bayctl.cli.main", "node", "observe", "--from", "db",
                               "--socket", socket_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        line = ""
        for _ in range(50):  # bounded: a stream that never delivers fails, it does not hang
            if line:
                break
            measure([(db.netns, web.ip, ("udp", 7))], timeout=0.3)
            line = follow.stdout.readline() if _readable(follow.stdout) else ""
        assert f"db({db.ip})" in line and f"web({web.ip}):7" in line and "DENIED (policy)" in line, line
        follow.send_signal(signal.SIGINT)
        out, err = follow.communicate(timeout=30)
    finally:
        if follow.poll() is None:
            os.kill(follow.pid, signal.SIGKILL)
            follow.wait()
    assert follow.returncode == 0 and "Traceback" not in err, err


def _readable(stream, wait=0.5):
    import select

    return bool(select.select([stream], [], [], wait)[0])


STAGED = """apiVersion: bayctl/v1
kind: GroupPolicy
groups:
  web: 410
  db: 420
rules:
  - from: db
    to: web
    ports: [udp/53]
"""


def test_a_staged_policy_reports_what_it_would_change_as_flow_events(lab):
    """Audit mode through the same events: a new flow the staged policy would deny is a
    would-drop event beside its allowed one; a denied packet it would let in, a would-allow."""
    agent_lab, web, db = lab
    client = agent_lab.client
    client.stage_policy(STAGED)
    try:
        before = len(client.flows())
        assert measure([(web.netns, db.ip, ("tcp", 5432))], timeout=2.0) == [True]
        _send_udp(db.netns, web.ip, 53, 1)
        flows = _flows_when(client, before, 4)
    finally:
        client.discard_staged()
    seen = [(f["from"], f["to"], f["proto"], f["dst_port"], f["verdict"]) for f in flows]
    assert seen.count(("web", "db", "tcp", 5432, "allowed")) == 1, flows
    assert seen.count(("web", "db", "tcp", 5432, "would-drop")) == 1, flows
    assert seen.count(("db", "web", "udp", 53, "denied")) == 1, flows
    assert seen.count(("db", "web", "udp", 53, "would-allow")) == 1, flows
    assert len(seen) == 4, flows

"""The agent enforces what the policy says, with real packets between namespaces.

Every example policy: each pair of endpoints (several groups, two members in some, an
unregistered external peer) is probed with what `bayctl verify` probes (verify.matrix: the
ports the rules name, one TCP and one UDP port they do not, ICMP) by verify's probes
(bayctl.verify.probes, one meaning of "reached"); what passes must be exactly what the
policy model allows, replies included. Then: no policy = deny all; a live policy change; a
bad policy changes nothing; kill -9 leaves enforcement in place and a restart reloads policy and endpoints.
"""

import os

import pytest
from harness.fixtures_agent import EXAMPLES, bayctl, example_policies, measure

pytestmark = pytest.mark.root


def load(name):
    from bayctl.policy import load_policy

    return load_policy(os.path.join(EXAMPLES, name))


def test_no_policy_denies_everything(agent_lab):
    assert agent_lab.client.show_policy()["digest"] is None
    for member, tag in zip(agent_lab.members[:3], (100, 100, 200)):
        agent_lab.client.add_endpoint(member.ip, tag, ifname="eth0", netns=member.netns)
    roles = [(a, b) for a in agent_lab.members[:3] for b in agent_lab.members[:3] if a is not b]
    probes = [("icmp", None), ("tcp", 7000), ("udp", 7000)]
    agent_lab.listen(probes)
    reached = measure([(a.netns, b.ip, p) for a, b in roles for p in probes])
    assert len(reached) == 18 and not any(reached), "with no policy every packet must be dropped"
    assert agent_lab.client.stats()["drops"]["NO_POLICY"] > 0


@pytest.mark.parametrize("example", example_policies() or ["(none found)"])
def test_example_policy_enforced(agent_lab, example):
    assert example.endswith(".yaml"), f"no example policies in {EXAMPLES}"
    policy = load(example)
    result = bayctl("node", "apply", os.path.join(EXAMPLES, example), "-f", "json",
                    socket=agent_lab.agent.socket_path)
    assert result.returncode == 0, result.stderr
    assert policy.digest in result.stdout
    roles = agent_lab.place(policy)
    wrong, seen = agent_lab.disagreements(policy, roles)
    assert wrong == [], "\n".join(wrong)
    # Both verdicts were exercised: the scenario shows allowing and denying.
    assert seen[True] > 0 and seen[False] > 0, seen


def test_stats_count_allowed_and_dropped_pairs_by_name(agent_lab):
    policy = load("web-db.yaml")
    with open(os.path.join(EXAMPLES, "web-db.yaml")) as handle:
        agent_lab.client.apply_policy(handle.read())
    roles = agent_lab.place(policy)
    web, db = roles[0], roles[2]
    wrong, _ = agent_lab.disagreements(policy, roles, services=[("tcp", 5432)],
                                       pairs=[(web, db), (db, web)])
    assert wrong == []
    pairs = {(p["from"], p["to"]): p for p in agent_lab.client.stats()["pairs"]}
    assert pairs[("web", "db")]["allowed_packets"] > 0
    assert pairs[("db", "web")]["dropped_packets"] > 0
    listed = bayctl("policy", "stats", "-f", "value", socket=agent_lab.agent.socket_path)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == ["web", "db"] for line in listed.stdout.splitlines())


def test_live_policy_change_takes_effect_without_restart(agent_lab):
    with open(os.path.join(EXAMPLES, "web-db.yaml")) as handle:
        text = handle.read()
    before = load("web-db.yaml")
    agent_lab.client.apply_policy(text)
    roles = agent_lab.place(before)
    web, db = roles[0], roles[2]
    probe = ("tcp", 8080)
    pid = agent_lab.agent.process.pid

    wrong, seen = agent_lab.disagreements(before, roles, services=[probe], pairs=[(db, web)])
    assert wrong == [] and seen == {True: 0, False: 1}, "db -> web tcp/8080 is denied at first"

    from bayctl.policy import parse_policy

    changed_text = text + "  - {from: db, to: web, ports: [tcp/8080]}\n"
    after = parse_policy(changed_text)
    agent_lab.client.apply_policy(changed_text)
    wrong, seen = agent_lab.disagreements(after, roles, services=[probe], pairs=[(db, web), (web, db)])
    assert wrong == [] and seen == {True: 1, False: 1}, wrong
    assert agent_lab.client.show_policy()["digest"] == after.digest
    assert agent_lab.agent.process.pid == pid, "no restart"


def test_bad_policy_is_refused_and_old_policy_still_enforced(agent_lab, tmp_path):
    policy = load("web-db.yaml")
    with open(os.path.join(EXAMPLES, "web-db.yaml")) as handle:
        agent_lab.client.apply_policy(handle.read())
    roles = agent_lab.place(policy)
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups:\n  web: 100\n"
                   "rules:\n  - from: web\n    to: nosuch\n")
    result = bayctl("node", "apply", str(bad), socket=agent_lab.agent.socket_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "bad.yaml:7" in message and "nosuch" in message, message
    assert agent_lab.client.show_policy()["digest"] == policy.digest
    wrong, _ = agent_lab.disagreements(policy, roles, services=[("tcp", 80), ("tcp", 5432)])
    assert wrong == [], "\n".join(wrong)


def test_clear_policy_fails_closed(agent_lab):
    policy = load("netgroups.yaml")
    with open(os.path.join(EXAMPLES, "netgroups.yaml")) as handle:
        agent_lab.client.apply_policy(handle.read())
    roles = agent_lab.place(policy)
    a, b = roles[0], roles[1]      # two members of star-1: allowed to talk
    wrong, seen = agent_lab.disagreements(policy, roles, services=[("icmp", None)], pairs=[(a, b)])
    assert wrong == [] and seen[True] == 1
    result = bayctl("node", "clear", socket=agent_lab.agent.socket_path)
    assert result.returncode == 0, result.stderr
    assert measure([(a.member.netns, b.member.ip, ("icmp", None))]) == [False]


def test_enforcement_survives_kill_and_restart_reloads_state(agent_lab):
    policy = load("stars.yaml")
    with open(os.path.join(EXAMPLES, "stars.yaml")) as handle:
        agent_lab.client.apply_policy(handle.read())
    roles = agent_lab.place(policy)
    endpoints_before = agent_lab.client.endpoints()
    probes = [("tcp", 9000), ("tcp", 9001), ("icmp", None)]

    agent_lab.agent.kill()                  # SIGKILL: nothing of the agent runs any more
    assert agent_lab.agent.process.returncode == -9
    down = bayctl("node", "show", socket=agent_lab.agent.socket_path)
    assert down.returncode == 1 and "agent not running at" in down.stderr and "Traceback" not in down.stderr
    wrong, seen = agent_lab.disagreements(policy, roles, services=probes)
    assert wrong == [], "enforcement changed without the agent:\n" + "\n".join(wrong)
    assert seen[True] > 0 and seen[False] > 0

    agent_lab.agent.start()                 # stale socket removed, pins reused, state reloaded
    assert agent_lab.client.show_policy()["digest"] == policy.digest
    assert agent_lab.client.endpoints() == endpoints_before
    wrong, _ = agent_lab.disagreements(policy, roles, services=probes)
    assert wrong == [], "\n".join(wrong)


def test_removed_endpoint_is_external_in_the_datapath(agent_lab):
    """Issue 17 item 3: removing an endpoint through the agent removes its address from the
    datapath's IP -> group map, so its traffic is classified `external` from then on. The
    policy tells the two apart: external may reach db on tcp/7100, web may not."""
    from bayctl.node.datapath import Datapath

    agent_lab.client.apply_policy("apiVersion: bayctl/v1\nkind: GroupPolicy\n"
                                  "groups: {web: 100, db: 200}\n"
                                  "rules:\n  - {from: external, to: db, ports: [tcp/7100]}\n")
    web, db = agent_lab.members[0], agent_lab.members[1]
    for member in agent_lab.members:
        agent_lab.client.remove_endpoint(member.ip)
    agent_lab.client.add_endpoint(web.ip, "web", ifname="eth0", netns=web.netns)
    agent_lab.client.add_endpoint(db.ip, "db", ifname="eth0", netns=db.netns)
    probe = ("tcp", 7100)
    agent_lab.listen([probe])
    datapath = Datapath(agent_lab.agent.pin_dir)
    try:
        assert datapath.endpoints().get(web.ip) == 100
        assert measure([(web.netns, db.ip, probe)], timeout=2.0) == [False], "web -> db is denied"

        agent_lab.client.remove_endpoint(web.ip)
        assert web.ip not in {ep["ip"] for ep in agent_lab.client.endpoints()}
        assert web.ip not in datapath.endpoints(), "removal left the address in the datapath's map"
        assert measure([(web.netns, db.ip, probe)], timeout=2.0) == [True], "now external -> db: allowed"
    finally:
        datapath.close()

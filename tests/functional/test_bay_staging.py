"""A real local bay's policy history, rollback, diff and audit mode, end to end (root, sshd).

One bay (2 slaves, web-db) serves the module. Audit mode is checked with `verify`'s own probes
(the bay's real namespaces, agents and SSH): while STAGED is staged, the matrix is web-db's
exactly (audit never changes a verdict); the group pairs the audit counts as would-allow /
would-drop are then exactly the pairs whose probes newly pass / newly fail once it is promoted.
Counts are compared as pairs, not packets: a denied TCP probe may retransmit its SYN (the
packet-for-packet equality is tests/functional/test_agent_audit.py's, with datagrams).
"""

import json
import os
import subprocess
import sys

import pytest
from harness.prereq import require, require_root, require_tools

from bayctl import api, bay_policy, history
from bayctl.errors import BayctlError
from bayctl.policy import diff, load_policy, parse_policy
from bayctl.providers import local_nodes
from bayctl.share import policy_path

pytestmark = [pytest.mark.root, pytest.mark.sshd]

BAY = "bbt-stage"
WEB_DB = policy_path("web-db")
# web-db's groups and services, other verdicts: db may answer web on 5432, external may reach
# db (not web) on 80, and members of db may no longer talk among themselves.
STAGED = """apiVersion: bayctl/v1
kind: GroupPolicy
groups: {web: 100, db: 200}
intraGroup: deny
rules:
  - {from: web, to: db, ports: [tcp/5432]}
  - {from: db, to: web, ports: [tcp/5432]}
  - {from: web, to: web}
  - {from: external, to: db, ports: [tcp/80]}
"""


def bayctl(*args):
    return subprocess.run([sys.executable, "-m", "bayctl.cli.main", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def bay(state_root):
    require_root()
    require_tools("ip", "nsenter", "setsid", "ssh-keygen", "sshd", "curl")
    require(os.path.exists(local_nodes.SSHD), f"needs {local_nodes.SSHD} (openssh-server)")
    made = api.create_bay(BAY, provider="local", slaves=2, policy=WEB_DB)
    yield made
    api.delete_bay(BAY)


@pytest.fixture
def staged_file(tmp_path):
    path = tmp_path / "staged.yaml"
    path.write_text(STAGED)
    return str(path)


def test_create_records_the_seeded_policy_in_the_history(bay):
    done = bayctl("policy", "history", "--bay", BAY, "-f", "json", "--long-digest")
    assert done.returncode == 0, done.stderr
    [record] = json.loads(done.stdout)
    assert (record["digest"], record["action"]) == (load_policy(WEB_DB).digest, "create")
    assert record["source"] == WEB_DB
    assert record["who"] == history.who_applies()


def test_diff_against_the_bay_is_the_diff_of_the_files(bay, staged_file):
    done = bayctl("policy", "diff", "--bay", BAY, staged_file, "-f", "json")
    assert done.returncode == 1, done.stderr
    old, new = load_policy(WEB_DB), parse_policy(STAGED)
    expected = diff.as_rows(diff.diff_policies(old, new), diff.group_namer(old, new))
    assert [tuple(row.values()) for row in json.loads(done.stdout)] == [tuple(row) for row in expected]
    same = bayctl("policy", "diff", "--bay", BAY, "web-db")
    assert (same.returncode, same.stdout.strip(), same.stderr) == (0, "", "no verdict changes\n")


def matrix(report):
    return {(p.source, p.target, p.service): p.observed for p in report.pairs}


def test_audit_counts_are_what_promotion_then_does(bay, staged_file):
    active = load_policy(WEB_DB).digest
    staged_digest = parse_policy(STAGED).digest
    done = bayctl("policy", "apply", staged_file, "--bay", BAY, "--audit", "-f", "json")
    assert done.returncode == 0, done.stderr
    assert sorted((r["node"], r["status"], r["digest"]) for r in json.loads(done.stdout)) == [
        ("slave0", "staged", staged_digest[:12]), ("slave1", "staged", staged_digest[:12])]

    before = bay.verify()                       # the bay still enforces web-db, probe for probe
    assert not before.mismatches, [p.describe() for p in before.mismatches]
    assert before.policy_digest == active

    shown = bayctl("policy", "staged", "--bay", BAY, "-f", "json")
    assert shown.returncode == 0, shown.stderr
    assert f"staged {staged_digest[:12]}" in shown.stderr and "on 2/2 slaves" in shown.stderr
    counted = json.loads(shown.stdout)
    would_allow = {(r["from"], r["to"]) for r in counted if r["would allow flows"]}
    would_drop = {(r["from"], r["to"]) for r in counted if r["would drop packets"]}

    promoted = bayctl("policy", "promote", "--bay", BAY, "-f", "json")
    assert promoted.returncode == 0, promoted.stderr
    assert {r["status"] for r in json.loads(promoted.stdout)} == {"seeded"}
    after = bay.refresh().verify()
    assert not after.mismatches, [p.describe() for p in after.mismatches]
    assert after.policy_digest == staged_digest
    was, now = matrix(before), matrix(after)
    newly_pass = {key[:2] for key in was if now[key] and not was[key]}
    newly_fail = {key[:2] for key in was if was[key] and not now[key]}
    assert would_allow == newly_pass and would_allow       # e.g. db -> web on 5432
    assert would_drop == newly_fail and would_drop         # e.g. external -> web on 80, db -> db
    assert bay_policy.staged_counts(BAY)["nodes"] == [
        {"node": "slave0", "digest": None, "active": staged_digest, "reason": ""},
        {"node": "slave1", "digest": None, "active": staged_digest, "reason": ""}]
    [latest, *_] = bay_policy.policy_history(BAY)
    assert (latest.digest, latest.action, latest.source) == (staged_digest, "promote", staged_file)


def test_discard_leaves_the_active_policy_and_promote_then_has_nothing(bay, staged_file):
    api.apply_policy(BAY, WEB_DB)
    bay_policy.stage_policy(BAY, staged_file)
    results = bay_policy.discard_staged(BAY)
    assert {(r.node, r.status) for r in results} == {("slave0", "discarded"), ("slave1", "discarded")}
    assert {n["digest"] for n in bay_policy.staged_counts(BAY)["nodes"]} == {None}
    with pytest.raises(BayctlError, match=f"nothing staged on bay {BAY}"):
        bay_policy.promote_staged(BAY)
    assert api.get_bay(BAY).state.policy_digest == load_policy(WEB_DB).digest


def test_rollback_reseeds_the_previous_policy_with_the_seeding_guarantees(bay):
    digests = [r.digest for r in bay_policy.policy_history(BAY)]
    web_db, staged = load_policy(WEB_DB).digest, parse_policy(STAGED).digest
    assert digests[:3] == [web_db, staged, web_db]
    done = bayctl("policy", "rollback", "--bay", BAY, "-f", "json")
    assert done.returncode == 0, done.stderr
    assert {r["status"] for r in json.loads(done.stdout)} == {"seeded"}
    state = api.get_bay(BAY).state
    assert state.policy_digest == parse_policy(STAGED).digest
    health = api.get_bay(BAY).health()
    assert [h.digest for h in health] == [parse_policy(STAGED).digest] * 2
    [latest, *_] = bay_policy.policy_history(BAY)
    assert latest.action == "rollback"
    # By digest prefix, back to web-db; an unknown digest is one line, nothing touched.
    again = bayctl("policy", "rollback", "--bay", BAY, load_policy(WEB_DB).digest[:10])
    assert again.returncode == 0, again.stderr
    assert api.get_bay(BAY).state.policy_digest == load_policy(WEB_DB).digest
    unknown = bayctl("policy", "rollback", "--bay", BAY, "notahexdigest")
    assert unknown.returncode == 1
    last_line = unknown.stderr.strip().splitlines()[-1]
    assert last_line.startswith("no policy 'notahexdigest' in this bay's history")
    assert api.get_bay(BAY).state.policy_digest == load_policy(WEB_DB).digest


def test_bad_input_and_a_dead_agent_are_named_and_nothing_is_half_recorded(bay, tmp_path):
    import signal

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups: {web: 100}\n"
                   "rules: [{from: web, to: db}]\n")
    refused = bayctl("policy", "apply", str(bad), "--bay", BAY, "--audit")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith(f"{bad}:4: rules[0].to")
    assert {n["digest"] for n in bay_policy.staged_counts(BAY)["nodes"]} == {None}   # no slave touched

    slave1 = local_nodes.NodeFiles(BAY, "slave1", api.get_bay(BAY).state.directory)
    os.kill(local_nodes.find_process(slave1, "bayctl.node.agent", slave1.agent_socket), signal.SIGKILL)
    try:
        done = bayctl("policy", "apply", "stars", "--bay", BAY, "--audit")
        assert done.returncode == 1
        assert "slave0: staged" in done.stderr and "slave1: failed agent not running" in done.stderr
        shown = bayctl("policy", "staged", "--bay", BAY)
        assert shown.returncode == 1            # slave0 stages what the bay has not recorded
        assert f"nothing staged on bay {BAY}" in shown.stderr and "slave1: " in shown.stderr
        with pytest.raises(BayctlError, match=f"nothing staged on bay {BAY}"):
            bay_policy.promote_staged(BAY)
    finally:
        api.create_bay(BAY, provider="local", slaves=2, policy=WEB_DB)  # restarts the dead agent
    bay_policy.discard_staged(BAY)
    assert {n["digest"] for n in bay_policy.staged_counts(BAY)["nodes"]} == {None}

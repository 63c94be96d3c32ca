"""Seeding against real OpenSSH sshd processes, each node with its real agent.

Scenarios: every slave seeded and verified; seeding again changes nothing; a node that is
down, one whose agent is not running, and one whose host key changed are each named with
their reason while the others are still seeded; slaves without a public address are
reached through the master as bastion.
"""

import contextlib
import http.server
import json
import logging
import os
import socketserver
import threading

import pytest
from harness.prereq import require_tools

from bayctl.errors import PolicyError, SeedError
from bayctl.policy import parse_policy
from bayctl.seed import FAILED, SEEDED, UNCHANGED, seed_policy

pytestmark = [pytest.mark.sshd, pytest.mark.root]

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "bayctl", "share", "policies")


def example(name):
    with open(os.path.join(EXAMPLES, name)) as handle:
        return handle.read()


WEB_DB = example("web-db.yaml")
STARS = example("stars.yaml")


def by_name(results):
    return {result.node: result for result in results}


def policy_file(slave):
    return os.path.join(slave.state_dir, "policy.yaml")


def known_host_lines(bay):
    with open(os.path.join(bay.state_dir, "known_hosts")) as handle:
        return [line for line in handle.read().splitlines() if line.strip()]


@pytest.mark.parametrize("remote", ["cli", "curl"])
def test_every_slave_is_seeded_and_reseeding_changes_nothing(sshd_bay_factory, remote, caplog):
    bay = sshd_bay_factory(3)
    wanted = parse_policy(WEB_DB).digest
    seen = []
    caplog.set_level(logging.DEBUG)

    results = seed_policy(bay.nodes(), WEB_DB, remote=remote, progress=seen.append, **bay.seed_options())

    assert [r.status for r in results] == [SEEDED] * 3
    assert [r.node for r in results] == [s.name for s in bay.slaves]
    assert sorted(r.node for r in seen) == sorted(s.name for s in bay.slaves)
    # Verified by the seeder's read-back AND by asking each agent directly.
    assert all(r.digest == wanted for r in results)
    assert [slave.agent_digest() for slave in bay.slaves] == [wanted] * 3
    assert len(known_host_lines(bay)) == 3  # each host key recorded on first contact

    saved = [os.stat(policy_file(slave)) for slave in bay.slaves]
    again = seed_policy(bay.nodes(), WEB_DB, remote=remote, **bay.seed_options())
    assert [r.status for r in again] == [UNCHANGED] * 3
    assert all(r.digest == wanted for r in again)
    # Unchanged means not rewritten: each agent's saved policy is the very same file.
    assert [(st.st_ino, st.st_mtime_ns) for st in map(os.stat, map(policy_file, bay.slaves))] == \
        [(st.st_ino, st.st_mtime_ns) for st in saved]

    # The private key never reaches the logs.
    with open(bay.key) as handle:
        key_body = "".join(handle.read().splitlines()[1:-1])
    assert key_body and key_body[:40] not in caplog.text


def test_a_login_that_is_not_root_asks_the_agent_through_sudo(sshd_bay_factory):
    # A cloud image logs in as a user (`debian`) and the agent's socket is root's only, so
    # seeding runs its command through `sudo -n`. The login here is root, whom the REAL sudo
    # lets through without a prompt: what this proves is that the command works under sudo
    # as written (the socket word expanded by the login shell, the policy on stdin).
    require_tools("sudo")
    bay = sshd_bay_factory(2)
    results = seed_policy(bay.nodes(), WEB_DB, remote="curl", sudo=True, **bay.seed_options())
    assert [r.status for r in results] == [SEEDED] * 2
    assert [slave.agent_digest() for slave in bay.slaves] == [parse_policy(WEB_DB).digest] * 2


def test_a_node_that_is_down_is_named_and_the_others_are_seeded(sshd_bay_factory):
    bay = sshd_bay_factory(3)
    down = bay.slaves[1]
    down.stop_sshd()

    with pytest.raises(SeedError) as caught:
        seed_policy(bay.nodes(), STARS, **bay.seed_options())

    results = by_name(caught.value.results)
    assert results[down.name].status == FAILED
    assert "connection refused" in results[down.name].reason
    assert down.name in str(caught.value) and "1 of 3" in str(caught.value)
    wanted = parse_policy(STARS).digest
    for slave in (bay.slaves[0], bay.slaves[2]):
        assert results[slave.name].status == SEEDED
        assert slave.agent_digest() == wanted


def test_a_node_that_never_answers_times_out_and_the_others_are_seeded(sshd_bay_factory):
    bay = sshd_bay_factory(2)
    silent_ip = "127.77.249.250"
    with bay.silent_node(silent_ip) as silent:
        nodes = bay.nodes() + [silent]
        results = by_name(seed_policy(nodes, WEB_DB, raise_on_failure=False, connect_timeout=3,
                                      **bay.seed_options()))
    assert results["bseed-silent"].status == FAILED
    # The timeout that fired is named: the 3 s SSH connect timeout, not the node's 90 s limit.
    assert results["bseed-silent"].reason == (f"ssh connection to {silent_ip}:{bay.port} timed out after 3s "
                                              "(the SSH connect timeout)")
    assert [results[s.name].status for s in bay.slaves] == [SEEDED, SEEDED]


@pytest.mark.parametrize("remote", ["cli", "curl"])
def test_a_node_whose_agent_is_not_running_is_named_with_the_agents_reason(sshd_bay_factory, remote):
    bay = sshd_bay_factory(3)
    broken = bay.slaves[2]
    broken.stop_agent()

    results = by_name(seed_policy(bay.nodes(), WEB_DB, raise_on_failure=False, remote=remote,
                                  **bay.seed_options()))

    assert results[broken.name].status == FAILED
    assert "agent not running" in results[broken.name].reason
    assert [results[s.name].status for s in bay.slaves[:2]] == [SEEDED, SEEDED]


def test_a_node_whose_agent_fails_to_apply_is_named_with_the_agents_reason(sshd_bay_factory):
    """The one-command curl exchange: a failed PUT is the node's failure, with the agent's words."""
    bay = sshd_bay_factory(2)
    broken = bay.slaves[1]
    # Where the agent saves the policy stands a directory: it cannot keep what it applies,
    # so it undoes the swap and answers 500 (a disk that cannot be written, for real).
    os.makedirs(os.path.join(policy_file(broken), "in-the-way"))

    results = by_name(seed_policy(bay.nodes(), WEB_DB, raise_on_failure=False, remote="curl",
                                  **bay.seed_options()))

    assert results[broken.name].status == FAILED
    assert results[broken.name].reason.startswith(f"agent: cannot write {policy_file(broken)}")
    assert broken.agent_digest() is None
    assert results[bay.slaves[0].name].status == SEEDED


def test_a_changed_host_key_is_refused_and_nothing_is_applied_there(sshd_bay_factory):
    bay = sshd_bay_factory(3)
    first = parse_policy(WEB_DB).digest
    seed_policy(bay.nodes(), WEB_DB, **bay.seed_options())  # host keys recorded here
    recorded = known_host_lines(bay)
    rebuilt = bay.slaves[0]
    rebuilt.new_host_key()

    with pytest.raises(SeedError) as caught:
        seed_policy(bay.nodes(), STARS, **bay.seed_options())

    results = by_name(caught.value.results)
    assert results[rebuilt.name].status == FAILED
    assert "host key changed" in results[rebuilt.name].reason
    assert "known_hosts" in results[rebuilt.name].reason  # says where to fix it
    assert rebuilt.agent_digest() == first  # refused before anything ran there
    second = parse_policy(STARS).digest
    assert [s.agent_digest() for s in bay.slaves[1:]] == [second, second]
    assert known_host_lines(bay) == recorded  # the new key was not trusted


def test_slaves_without_public_address_are_seeded_through_the_master(sshd_bay_factory):
    bay = sshd_bay_factory(2, master=True)
    master = bay.master.node(public=True)
    slaves = bay.nodes(public=False)
    assert all(node.public_ip is None for node in slaves)

    results = seed_policy(slaves, WEB_DB, bastion=master, **bay.seed_options())

    assert [r.status for r in results] == [SEEDED, SEEDED]
    assert all(f"via {bay.master.ip}" in r.address for r in results)
    wanted = parse_policy(WEB_DB).digest
    assert [s.agent_digest() for s in bay.slaves] == [wanted, wanted]
    assert len(known_host_lines(bay)) == 3  # the master's key and each slave's

    # A slave behind the master that is down: the master says it cannot reach it.
    bay.slaves[1].stop_sshd()
    results = by_name(seed_policy(slaves, STARS, bastion=master, raise_on_failure=False,
                                  **bay.seed_options()))
    assert results[bay.slaves[0].name].status == SEEDED
    assert results[bay.slaves[1].name].status == FAILED
    assert f"the bastion could not reach {bay.slaves[1].ip}" in results[bay.slaves[1].name].reason

    # With the bastion down every tunnelled slave says so.
    bay.master.stop_sshd()
    results = seed_policy(slaves, WEB_DB, bastion=master, raise_on_failure=False, **bay.seed_options())
    assert [r.status for r in results] == [FAILED, FAILED]
    assert all(r.reason.startswith(f"bastion {bay.master.ip}") for r in results)


def test_an_invalid_policy_stops_before_any_node_is_contacted(sshd_bay_factory):
    bay = sshd_bay_factory(1)
    bad = WEB_DB.replace("web: 100", "web: 100\n  dbx: 100")  # duplicate tag

    with pytest.raises(PolicyError):
        seed_policy(bay.nodes(), bad, **bay.seed_options())

    assert bay.slaves[0].agent_digest() is None
    assert not os.path.exists(os.path.join(bay.state_dir, "known_hosts"))


def test_a_node_with_several_host_keys_is_asked_for_its_ed25519_key_then_for_the_recorded_one(
        sshd_bay_factory):
    bay = sshd_bay_factory(2, host_key_types=("rsa", "ecdsa", "ed25519"))
    fresh, known = bay.slaves
    # `known` was recorded earlier (another tool, an older bayctl) with its RSA key.
    with open(known.host_keys[0] + ".pub") as handle:
        rsa_line = f"[{known.ip}]:{bay.port} {' '.join(handle.read().split()[:2])}"
    with open(os.path.join(bay.state_dir, "known_hosts"), "w") as handle:
        handle.write(rsa_line + "\n")

    results = seed_policy(bay.nodes(), WEB_DB, remote="curl", **bay.seed_options())

    assert [r.status for r in results] == [SEEDED, SEEDED]
    lines = known_host_lines(bay)
    assert lines[0] == rsa_line  # the recorded key was asked for, and is still the one trusted
    assert lines[1].split()[:2] == [f"[{fresh.ip}]:{bay.port}", "ssh-ed25519"]
    with open(fresh.host_keys[2] + ".pub") as handle:
        assert lines[1].split()[2] == handle.read().split()[1]


class _LyingAgent(http.server.BaseHTTPRequestHandler):
    """The agent's policy API, answering what `lie` says instead of what it holds: a node
    whose agent is broken (or not bayctl's) behind the real socket path sshd hands out."""

    lie = {}  # "put": HTTP status for every PUT; "digest": what every GET reports

    def do_GET(self):
        self._answer(200, {"digest": self.lie["digest"], "groups": {}, "source": ""})

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.lie["put"]
        self._answer(status, {"digest": self.lie["digest"], "entries": 1} if status == 200 else
                     {"error": "policy unchanged"})

    def _answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def lying_agent(slave, **lie):
    """Replace `slave`'s agent by one that lies, on the same socket, for the duration."""
    slave.stop_agent()
    handler = type("Lie", (_LyingAgent,), {"lie": lie})
    server = socketserver.ThreadingUnixStreamServer(slave.socket, handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        os.unlink(slave.socket)


OTHER_DIGEST = parse_policy(STARS).digest


@pytest.mark.parametrize("remote,lie", [
    ("curl", {"put": 200, "digest": OTHER_DIGEST}),  # "applied", then reads back another policy
    ("cli", {"put": 200, "digest": OTHER_DIGEST}),
    ("curl", {"put": 412, "digest": OTHER_DIGEST}),  # "unchanged" for a digest it does not hold
], ids=["curl-wrong-digest", "cli-wrong-digest", "curl-lies-unchanged"])
def test_a_node_whose_agent_reports_another_digest_is_failed_by_the_read_back(sshd_bay_factory, remote, lie):
    bay = sshd_bay_factory(2)
    liar = bay.slaves[1]
    wanted = parse_policy(WEB_DB).digest
    with lying_agent(liar, **lie):
        with pytest.raises(SeedError) as caught:
            seed_policy(bay.nodes(), WEB_DB, remote=remote, **bay.seed_options())
    results = by_name(caught.value.results)
    assert results[liar.name].status == FAILED
    assert results[liar.name].reason == (f"read-back digest {OTHER_DIGEST[:12]} differs from the policy's "
                                         f"{wanted[:12]}")
    assert f"{liar.name} (read-back digest" in str(caught.value) and "1 of 2" in str(caught.value)
    assert results[bay.slaves[0].name].status == SEEDED and bay.slaves[0].agent_digest() == wanted

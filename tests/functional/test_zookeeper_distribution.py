"""Policy distribution through the bay's own ZooKeeper, on a real local bay (issue 16).

One local bay (3 slaves) serves the module: its master runs a real ZooKeeper (Debian's
package, private port, config and data dir, started by bayctl); every slave's agent was
given the bay's read secret over SSH at create time and watches the policy znode. Scenarios:
apply and converge (with history), an agent that starts after the apply, ZooKeeper down and
back (agents keep enforcing; SSH is the fallback), a node whose agent refuses the policy
(named; the others converge), and the digest ACL refusing writes without bayctl's secret.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from harness.fixtures_localbay import leftovers
from harness.prereq import require, require_root, require_tools
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from bayctl import api
from bayctl.create.context import Status
from bayctl.create.state import state_root
from bayctl.distribution import put_policy, zookeeper
from bayctl.errors import SeedError
from bayctl.node.client import AgentClient
from bayctl.node.zkwatch import nodes_path, policy_path, report_path
from bayctl.policy import load_policy
from bayctl.providers import local_nodes
from bayctl.providers.local import LocalProvider
from bayctl.providers.local_zookeeper import ZOOKEEPER_JAR

pytestmark = [pytest.mark.root, pytest.mark.sshd, pytest.mark.zookeeper]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICIES = os.path.join(ROOT, "bayctl", "share", "policies")
WEB_DB, STARS, GIST = (os.path.join(POLICIES, f"{name}.yaml") for name in ("web-db", "stars", "gist-numeric"))
BAY = "bbt-zk"
SLAVES = ["slave0", "slave1", "slave2"]


@pytest.fixture(scope="module")
def bay(state_root):
    require_root()
    require_tools("ip", "nsenter", "setsid", "ssh-keygen", "sshd", "java")
    require(os.path.exists(ZOOKEEPER_JAR), "needs Debian's zookeeper package (tools/setup.d/65-zookeeper.sh)")
    lines = []
    created = api.create_bay(BAY, provider="local", slaves=3, policy=WEB_DB, status=Status(lines.append))
    created.progress = lines
    yield created
    api.delete_bay(BAY)


def local_provider():
    """The local provider over the state root this test run uses (tests/conftest.py sets it)."""
    return LocalProvider(state_root())


def digests(bay, nodes=SLAVES):
    """node -> the digest its agent enforces (asked on its own socket, not through ZooKeeper)."""
    provider = local_provider()
    return {node: AgentClient(provider.node_files(BAY, node).agent_socket, timeout=10).show_policy()["digest"]
            for node in nodes}


def apply(bay, path, **options):
    fresh = api.get_bay(BAY)
    return put_policy(fresh.state, fresh.nodes, path, ssh_user=fresh.ssh_user, ssh_key=fresh.ssh_key,
                      **options)


def bayctl_client():
    creds = zookeeper.Credentials.load(api.get_bay(BAY).state.directory)
    return creds, zookeeper.connect(creds)


def test_create_distributes_through_zookeeper_and_apply_converges_with_history(bay):
    assert any("watches the bay's ZooKeeper" in line for line in bay.progress)
    assert set(digests(bay).values()) == {load_policy(WEB_DB).digest}  # create's seeding went through ZK
    results = apply(bay, STARS)
    assert [(r.node, r.status) for r in results] == [(node, "seeded") for node in SLAVES]
    assert all(r.address.startswith("zookeeper ") for r in results)
    assert set(digests(bay).values()) == {load_policy(STARS).digest}
    again = apply(bay, STARS)  # the same digest: no new version, every node still reports it
    assert {r.status for r in again} == {"unchanged"}
    creds, client = bayctl_client()
    try:
        kept = [record["digest"] for record in zookeeper.history(client, creds)]
    finally:
        client.stop()
    assert kept[-2:] == [load_policy(WEB_DB).digest, load_policy(STARS).digest]
    assert api.get_bay(BAY).state.policy_digest == load_policy(STARS).digest
    # A policy given as text (a rollback's or a promotion's), named by the caller.
    with open(WEB_DB, encoding="utf-8") as handle:
        results = apply(bay, "kept/web-db", text=handle.read())
    assert {r.status for r in results} == {"seeded"}
    assert set(digests(bay).values()) == {load_policy(WEB_DB).digest}


def test_an_agent_started_after_the_apply_takes_the_current_version(bay):
    files = local_provider().node_files(BAY, "slave2")
    pid = local_nodes.find_process(files, "bayctl.node.agent", files.agent_socket)
    os.kill(pid, signal.SIGTERM)
    local_nodes.stop_all([pid])
    with pytest.raises(SeedError) as raised:
        apply(bay, GIST, timeout=5)
    failed = {r.node: r.reason for r in raised.value.results if not r.ok}
    assert list(failed) == ["slave2"] and "not connected to the bay's ZooKeeper" in failed["slave2"]
    assert set(digests(bay, ["slave0", "slave1"]).values()) == {load_policy(GIST).digest}
    local_nodes.ensure_agent(files)  # boots with its saved config and policy, then catches up
    creds, client = bayctl_client()
    try:
        outcome = zookeeper.wait_for_reports(client, creds, ["slave2"], load_policy(GIST).digest, timeout=60)
    finally:
        client.stop()
    assert outcome["slave2"]["ok"], outcome
    assert set(digests(bay).values()) == {load_policy(GIST).digest}


def test_zookeeper_down_agents_keep_their_policy_ssh_falls_back_and_zookeeper_back_converges(bay):
    server = local_provider().zookeeper(BAY)
    held = digests(bay)
    server.stop()
    try:
        assert digests(bay) == held  # every agent still enforces what it had
        with pytest.raises(SeedError, match="ZooKeeper .* did not answer"):
            apply(bay, WEB_DB)
        by_ssh = apply(bay, WEB_DB, distribution="ssh")  # the fallback, straight to each agent
        assert {r.status for r in by_ssh} == {"seeded"}
        assert set(digests(bay).values()) == {load_policy(WEB_DB).digest}
    finally:
        server.start()
    # ZooKeeper still holds the older version; an agent restarted now must not go back to it:
    # only a version it has not seen yet changes a node.
    files = local_provider().node_files(BAY, "slave0")
    local_nodes.stop_all([local_nodes.find_process(files, "bayctl.node.agent", files.agent_socket)])
    local_nodes.ensure_agent(files)
    creds, client = bayctl_client()
    try:
        outcome = zookeeper.wait_for_reports(client, creds, ["slave0"], load_policy(WEB_DB).digest,
                                             timeout=30)
    finally:
        client.stop()
    assert outcome["slave0"]["ok"], outcome
    results = apply(bay, STARS)  # the agents reconnected by themselves
    assert {r.status for r in results} == {"seeded"}
    assert set(digests(bay).values()) == {load_policy(STARS).digest}


def test_a_node_whose_agent_refuses_is_named_and_the_others_converge(bay):
    state_dir = local_provider().node_files(BAY, "slave1").agent_state
    saved = os.path.join(state_dir, "policy.yaml")
    before = digests(bay)["slave1"]
    os.unlink(saved)
    os.mkdir(saved)  # the agent cannot save a new policy: it must refuse it and keep the old one
    try:
        with pytest.raises(SeedError) as raised:
            apply(bay, WEB_DB, timeout=30)
        failed = {r.node: r.reason for r in raised.value.results if not r.ok}
        assert list(failed) == ["slave1"]
        assert "refused the policy" in failed["slave1"] and "cannot write" in failed["slave1"]
        assert "slave1" in str(raised.value)
        now = digests(bay)
        assert now["slave1"] == before
        assert {now["slave0"], now["slave2"]} == {load_policy(WEB_DB).digest}
    finally:
        os.rmdir(saved)
    # Repaired: an apply by SSH puts it right (ZooKeeper already holds this version).
    assert {r.status for r in apply(bay, WEB_DB, distribution="ssh")} <= {"seeded", "unchanged"}


def wait_for_socket(files, timeout=60):
    """Until a (re)started agent answers on its socket (it runs before it listens)."""
    from bayctl.node.client import AgentError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return AgentClient(files.agent_socket, timeout=10).health()
        except AgentError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def reports(nodes=SLAVES):
    """node -> the digest its agent reports under its ephemeral znode (what bayctl reads)."""
    creds, client = bayctl_client()
    try:
        return {node: json.loads(client.get(report_path(creds.root, node))[0])["digest"] for node in nodes}
    finally:
        zookeeper.disconnect(client)


def test_a_node_changed_behind_bayctls_back_is_put_back_by_applying_the_held_policy(bay):
    """Drift through ZooKeeper: slave1's policy is changed by `PUT /v1/policy` straight to its
    agent, slave2's on disk while its agent is down (it boots with it); each agent says so in
    its report, and `bayctl policy apply` of the policy the bay holds puts both back (a new
    version of the same text), leaving slave0 alone."""
    stars, web_db = load_policy(STARS).digest, load_policy(WEB_DB).digest
    apply(bay, STARS)
    assert set(digests(bay).values()) == {stars}
    provider = local_provider()
    with open(WEB_DB, encoding="utf-8") as handle:
        other = handle.read()
    by_hand = AgentClient(provider.node_files(BAY, "slave1").agent_socket, timeout=10)
    by_hand.apply_policy(other, source="by hand")   # PUT /v1/policy, straight to the agent
    files = provider.node_files(BAY, "slave2")
    local_nodes.stop_all([local_nodes.find_process(files, "bayctl.node.agent", files.agent_socket)])
    with open(os.path.join(files.agent_state, "policy.yaml"), "w", encoding="utf-8") as handle:
        handle.write(other)
    local_nodes.ensure_agent(files)
    wait_for_socket(files)
    assert digests(bay) == {"slave0": stars, "slave1": web_db, "slave2": web_db}
    creds, client = bayctl_client()
    try:  # each agent re-reports what it now enforces, whichever way it changed
        drifted = zookeeper.wait_for_reports(client, creds, ["slave1", "slave2"], web_db, timeout=30)
    finally:
        zookeeper.disconnect(client)
    assert {node: outcome["ok"] for node, outcome in drifted.items()} == {"slave1": True, "slave2": True}

    done = subprocess.run([sys.executable, "-m", "bayctl.cli.main", "policy", "apply", STARS, "--bay", BAY,
                           "-f", "json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    status = {row["node"]: row["status"] for row in json.loads(done.stdout)}
    assert status == {"slave0": "unchanged", "slave1": "seeded", "slave2": "seeded"}, done.stdout
    assert "the bay holds this policy, but slave1, slave2 enforce(s) another" in done.stderr
    assert digests(bay) == reports() == {node: stars for node in SLAVES}
    report = api.verify_bay(BAY)   # the kernels' verdicts: real probes between the slaves
    assert report.ok and not report.mismatches and report.policy_digest == stars


def test_acl_refuses_writes_without_bayctls_secret(bay):
    creds = zookeeper.Credentials.load(api.get_bay(BAY).state.directory)
    anonymous = KazooClient(hosts=creds.hosts)
    agent = KazooClient(hosts=creds.hosts, auth_data=[("digest", f"agent:{creds.agent_secret}")])
    for client in (anonymous, agent):
        client.start(timeout=15)
    try:
        for client in (anonymous, agent):
            with pytest.raises(NoAuthError):
                client.set(policy_path(creds.root), b'{"version": 99, "digest": "x", "text": ""}')
            for parent in ("", "/zookeeper", "/zookeeper/quota"):  # ZooKeeper's own: world ALL by default
                with pytest.raises(NoAuthError):
                    client.create(parent + "/intruder", b"")
        with pytest.raises(NoAuthError):
            anonymous.get(policy_path(creds.root))          # not even readable without a secret
        with pytest.raises(NoAuthError):
            anonymous.create(nodes_path(creds.root) + "/slave9", b"", ephemeral=True)
        assert agent.get(policy_path(creds.root))[0]        # agents read
        for path in ("/", "/bayctl", creds.root, policy_path(creds.root), nodes_path(creds.root)):
            acl, _ = agent.get_acls(path)
            assert all(entry.id.scheme == "digest" for entry in acl), (path, acl)
    finally:
        for client in (anonymous, agent):
            client.stop()
    # The secrets never reach the output.
    shown = repr(api.get_bay(BAY).to_dict()) + "\n".join(bay.progress)
    assert creds.agent_secret not in shown and creds.bayctl_secret not in shown
    assert os.stat(os.path.join(api.get_bay(BAY).state.directory, zookeeper.STATE_FILE)).st_mode & 0o077 == 0


def test_bayctl_reaches_a_zookeeper_behind_the_master_through_its_ssh(bay):
    """A cloud bay's ZooKeeper is open to the bay's network only: bayctl goes through the
    master's sshd (here the local master's real one) with the bay's key and known_hosts."""
    from bayctl.distribution import _via

    fresh = api.get_bay(BAY)
    creds = zookeeper.Credentials.load(fresh.state.directory)
    creds.tunnel = True
    creds.save(fresh.state.directory)
    try:
        client = zookeeper.connect(creds, via=_via(fresh.state, fresh.nodes, fresh.ssh_user, fresh.ssh_key))
        try:
            assert client.hosts[0][0] == "127.0.0.1"   # the local end of the tunnel
            assert zookeeper.current(client, creds)["digest"]
        finally:
            zookeeper.disconnect(client)
        results = apply(bay, GIST)
        assert {r.status for r in results} == {"seeded"}
        assert set(digests(bay).values()) == {load_policy(GIST).digest}
    finally:
        creds.tunnel = False
        creds.save(fresh.state.directory)


def test_a_slave_that_cannot_reach_zookeeper_is_named_at_setup_and_forgetting_drops_the_secret(
        bay, monkeypatch):
    """What a cloud whose security group closes 2181 to the slaves does to a setup: the slave
    whose agent cannot connect (a REJECT in its own namespace, the kernel's) is named, so
    `distribution auto` seeds over SSH instead of trusting a way the slaves lack; the agents
    told to forget drop their configuration and secret (a restart watches nothing); a setup
    once the port is open gives it back, and applies converge through ZooKeeper again."""
    from bayctl.distribution import bootstrap
    from bayctl.node.zkwatch import CONFIG_FILE

    fresh = api.get_bay(BAY)
    creds = zookeeper.Credentials.load(fresh.state.directory)
    login = dict(ssh_user=fresh.ssh_user, ssh_key=fresh.ssh_key)
    provider = local_provider()
    files = {node: provider.node_files(BAY, node) for node in SLAVES}

    bootstrap.forget_zookeeper(fresh.state, fresh.nodes, **login)
    for node, node_files in files.items():
        assert AgentClient(node_files.agent_socket, timeout=10).distribution() == {"hosts": None}, node
        assert not os.path.exists(os.path.join(node_files.agent_state, CONFIG_FILE)), node
    state_file = pathlib.Path(fresh.state.directory, zookeeper.STATE_FILE)
    saved = state_file.read_text()
    assert creds.agent_secret not in "".join(pathlib.Path(f.agent_log).read_text() for f in files.values())

    host, port = creds.hosts.rsplit(":", 1)
    rule = ["OUTPUT", "-p", "tcp", "-d", host, "--dport", port, "-j", "REJECT", "--reject-with", "tcp-reset"]
    iptables = ["nsenter", f"--net={files['slave1'].netns}", "iptables"]
    subprocess.run(iptables + ["-I", *rule], check=True)
    monkeypatch.setattr(bootstrap, "AGENTS_CONNECT_TIMEOUT", 10.0)
    try:
        with pytest.raises(SeedError) as raised:
            bootstrap.setup_zookeeper(fresh.state, fresh.nodes, creds.hosts, owns_root=True, **login)
        assert str(raised.value).startswith("slave1: the agent did not connect to the bay's ZooKeeper")
    finally:
        subprocess.run(iptables + ["-D", *rule], check=True)
    assert state_file.read_text() == saved  # same secrets

    bootstrap.setup_zookeeper(fresh.state, fresh.nodes, creds.hosts, owns_root=True, **login)
    for node, node_files in files.items():
        shown = AgentClient(node_files.agent_socket, timeout=10).distribution()
        assert shown["hosts"] == creds.hosts and shown["connected"], (node, shown)
    results = apply(bay, STARS)
    assert [(r.status, r.address) for r in results] == [("seeded", f"zookeeper {creds.hosts}")] * len(SLAVES)
    assert set(digests(bay).values()) == {load_policy(STARS).digest}


def test_delete_stops_the_bays_zookeeper_and_leaves_nothing(bay, state_root):
    server = local_provider().zookeeper(BAY)
    assert server.pid() is not None
    api.delete_bay(BAY)
    assert server.pid() is None
    assert leftovers(BAY, state_root) == []


def test_a_machine_without_zookeeper_gets_a_local_bay_seeded_over_ssh(state_root, monkeypatch):
    """`bayctl create mesosbay demo` on a laptop without Debian's zookeeper still works: the
    bay stays on SSH seeding, as `show` says."""
    from bayctl.providers import local_zookeeper as zkserver

    require_root()
    monkeypatch.setattr(zkserver, "ZOOKEEPER_JAR", os.path.join(state_root, "no-such-zookeeper.jar"))
    name = "bbt-zknone"
    try:
        lines = []
        created = api.create_bay(name, provider="local", slaves=1, policy=WEB_DB, status=Status(lines.append))
        assert created.state.steps["setup-distribution"] == "skipped"
        assert created.to_dict()["distribution"] == "ssh"
        assert [r.address.startswith("zookeeper") for r in created.apply_policy(STARS)] == [False]
        assert local_provider().zookeeper(name).pid() is None
    finally:
        api.delete_bay(name)
    assert leftovers(name, state_root) == []

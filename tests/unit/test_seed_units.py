"""Seeding's pure parts: host-key trust on first use, reading the node's answers, bad input."""

import os

import asyncssh
import pytest

from bayctl.errors import NodeError, PolicyError, SeedError
from bayctl.providers.base import SLAVE, Node
from bayctl.remote import HostKeyChanged
from bayctl.remote.hostkeys import TofuKnownHosts, host_pattern
from bayctl.seed import seed_policy
from bayctl.seed.remote import CliAgent, CurlAgent, remote_agent

POLICY = """apiVersion: bayctl/v1
kind: GroupPolicy
groups: {web: 100, db: 200}
rules:
  - {from: web, to: db, ports: [tcp/5432]}
"""


def test_host_pattern_follows_openssh():
    assert host_pattern("10.0.0.5", 22) == "10.0.0.5"
    assert host_pattern("127.77.1.2", 22222) == "[127.77.1.2]:22222"


def test_first_key_is_recorded_then_enforced(tmp_path):
    first = asyncssh.generate_private_key("ssh-ed25519")
    other = asyncssh.generate_private_key("ssh-ed25519")
    trust = TofuKnownHosts(tmp_path)
    trust.check_or_record("10.0.0.5", 22, first)
    trust.check_or_record("10.0.0.5", 22, first)  # same key again: fine

    reloaded = TofuKnownHosts(tmp_path)  # a later run reads the bay's file
    with pytest.raises(HostKeyChanged, match=r"host key changed for 10\.0\.0\.5 .*known_hosts"):
        reloaded.check_or_record("10.0.0.5", 22, other)
    assert "10.0.0.5" in reloaded.refused
    with open(os.path.join(tmp_path, "known_hosts")) as handle:
        assert handle.read().count("\n") == 1


def test_an_unreadable_known_hosts_fails_closed(tmp_path):
    (tmp_path / "known_hosts").write_text("10.0.0.5 ssh-ed25519 not-base64!!\n")
    with pytest.raises(ValueError, match="known_hosts:1"):
        TofuKnownHosts(tmp_path)


def test_seeding_refuses_to_run_on_a_damaged_known_hosts(tmp_path):
    (tmp_path / "known_hosts").write_text("[10.0.0.5]:22 ssh-ed25519\n")
    key = tmp_path / "id"
    key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    nowhere = [Node("s0", SLAVE, "192.0.2.1", None)]
    with pytest.raises(SeedError, match="known_hosts:1: unreadable"):
        seed_policy(nowhere, POLICY, bay_state_dir=tmp_path, ssh_user="root", ssh_key=key)


def test_cli_answers():
    agent = CliAgent(agent_socket="/run/x y.sock")
    assert agent.show_command() == "bayctl node show -f json --socket '/run/x y.sock'"
    assert agent.apply_command() == "bayctl node apply - --socket '/run/x y.sock'"
    assert agent.parse_digest(0, '{"digest": "abc", "groups": {}}', "") == "abc"
    assert agent.parse_digest(0, '{"digest": null, "groups": {}}', "") is None
    with pytest.raises(NodeError, match="agent not running at /s"):
        agent.parse_digest(1, "", "some warning\nagent not running at /s\n")
    with pytest.raises(NodeError, match="bayctl not found"):
        agent.check_applied(127, "", "sh: bayctl: not found")


def test_curl_answers():
    agent = CurlAgent()
    assert '"${BAYCTL_AGENT_SOCKET:-/run/bayctl/agent.sock}"' in agent.show_command()
    assert agent.parse_digest(0, '{"digest": "abc"}\nbayctl-http-status:200', "") == "abc"
    with pytest.raises(NodeError, match="agent: line 3: bad port"):
        agent.check_applied(0, '{"error": "line 3: bad port"}\nbayctl-http-status:400', "")
    with pytest.raises(NodeError, match="agent not running"):
        agent.parse_digest(7, "", "curl: (7) Couldn't connect to server")


def test_sudo_wraps_every_node_command_whole():
    for mode in ("cli", "curl"):
        agent = remote_agent(mode, sudo=True)
        assert agent.show_command() == "sudo -n " + remote_agent(mode).show_command()
        assert agent.apply_command() == "sudo -n " + remote_agent(mode).apply_command()
    seed = CurlAgent(sudo=True).seed_command("ab" * 32)
    assert seed == "sudo -n " + CurlAgent().seed_command("ab" * 32)
    assert seed.count("sudo") == 1 and " --next -sS " in seed  # the second request is curl's, not sudo's


def test_an_invalid_policy_is_refused_before_anything_else(tmp_path):
    nowhere = [Node("s0", SLAVE, "192.0.2.1", None)]
    with pytest.raises(PolicyError):
        seed_policy(nowhere, POLICY.replace("tcp/5432", "tcp/99999"), bay_state_dir=tmp_path,
                    ssh_user="root", ssh_key=tmp_path / "missing")
    assert not (tmp_path / "known_hosts").exists()


def test_a_missing_or_locked_key_is_a_clear_error_without_its_contents(tmp_path):
    nowhere = [Node("s0", SLAVE, "192.0.2.1", None)]
    with pytest.raises(SeedError, match="cannot read the SSH key .*missing"):
        seed_policy(nowhere, POLICY, bay_state_dir=tmp_path, ssh_user="root", ssh_key=tmp_path / "missing")
    locked = asyncssh.generate_private_key("ssh-ed25519")
    path = tmp_path / "locked"
    secret = locked.export_private_key("pkcs8-pem", passphrase="pw")
    path.write_bytes(secret)
    with pytest.raises(SeedError) as caught:
        seed_policy(nowhere, POLICY, bay_state_dir=tmp_path, ssh_user="root", ssh_key=path)
    assert "cannot read the SSH key" in str(caught.value)
    assert secret.decode().splitlines()[1][:30] not in str(caught.value)


DIGEST = "ab" * 32


def test_curl_seed_is_one_command_with_a_conditional_put_then_a_get():
    agent = CurlAgent(agent_socket="/run/a b.sock")
    assert remote_agent().mode == "curl"  # the library's default way, as every bay seeds
    command = agent.seed_command(DIGEST)
    put, get = command.split(" --next ")
    assert put.startswith("curl --fail-early ") and "-X PUT" in put and "--data-binary @-" in put
    assert f"-H 'If-None-Match: \"{DIGEST}\"'" in put
    assert "-X GET" in get and "--unix-socket '/run/a b.sock'" in get and "If-None-Match" not in get
    with pytest.raises(ValueError):
        agent.seed_command("abc; rm -rf /")  # only a digest ever reaches the remote shell


def test_curl_seed_answers():
    agent = CurlAgent()
    held = f'{{"digest": "{DIGEST}", "groups": {{}}}}\nbayctl-http-status:200'
    applied = f'{{"digest": "{DIGEST}", "entries": 3}}\nbayctl-http-status:200\n' + held
    assert agent.parse_seed(0, applied, "") == (True, DIGEST)
    unchanged = '{"error": "precondition failed: ..."}\nbayctl-http-status:412\n' + held
    assert agent.parse_seed(0, unchanged, "") == (False, DIGEST)
    refused = '{"error": "<request>:3: bad port"}\nbayctl-http-status:400\n' + held
    with pytest.raises(NodeError, match="agent: <request>:3: bad port"):
        agent.parse_seed(0, refused, "")
    with pytest.raises(NodeError, match="agent not running"):
        agent.parse_seed(7, "bayctl-http-status:000\n", "curl: (7) Couldn't connect to server")
    with pytest.raises(NodeError, match="no answer"):
        agent.parse_seed(0, "bayctl-http-status:000\n" + held, "")
    with pytest.raises(NodeError, match="unreadable answer"):
        agent.parse_seed(0, held, "")  # the PUT's answer is missing

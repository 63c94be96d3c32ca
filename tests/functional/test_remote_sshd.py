"""bayctl.remote.BayShell against real OpenSSH sshd processes: each way of not reaching a node
is its own error type (callers decide by type, never by words), each timeout says which one
fired, and nodes without a public address ride on the bastion's one master connection."""

import asyncio

import asyncssh
import pytest

from bayctl.remote import (
    BayShell,
    CommandTimeout,
    ConnectTimeout,
    HostKeyChanged,
    KeyRefused,
    KeyUnreadable,
    Unreachable,
)
from bayctl.seed import seed_policy

pytestmark = [pytest.mark.sshd, pytest.mark.root]


def shell_of(bay, nodes=None, **options):
    return BayShell(nodes if nodes is not None else bay.nodes(), bay_state_dir=bay.state_dir,
                    ssh_user="root", ssh_key=bay.key, port=bay.port, **options)


async def outcome(shell, name, command="echo ok", **options):
    """What running `command` on `name` gives: its stdout, or the error raised."""
    async with shell:
        try:
            return (await shell.run(name, command, **options)).stdout.strip()
        except Exception as exc:  # the type is what the test looks at
            return exc


def test_each_failure_to_reach_a_node_has_its_own_type(sshd_bay_factory, tmp_path):
    bay = sshd_bay_factory(3)
    first, down, rebuilt = bay.slaves
    for slave in bay.slaves:  # each host key recorded here
        assert asyncio.run(outcome(shell_of(bay), slave.name)) == "ok"
    down.stop_sshd()
    rebuilt.new_host_key()

    refused = asyncio.run(outcome(shell_of(bay), down.name))
    assert isinstance(refused, Unreachable) and "connection refused" in refused.reason
    assert str(refused).startswith(f"{down.name}: ")
    changed = asyncio.run(outcome(shell_of(bay), rebuilt.name))
    assert isinstance(changed, HostKeyChanged) and "known_hosts" in changed.reason

    other_key = tmp_path / "other"
    other_key.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    stranger = BayShell(bay.nodes(), bay_state_dir=bay.state_dir, ssh_user="root", ssh_key=other_key,
                        port=bay.port)
    assert isinstance(asyncio.run(outcome(stranger, first.name)), KeyRefused)

    with pytest.raises(KeyUnreadable, match="cannot read the SSH key .*missing"):
        BayShell(bay.nodes(), bay_state_dir=bay.state_dir, ssh_user="root", ssh_key=tmp_path / "missing")


def test_each_timeout_says_which_one_fired(sshd_bay_factory):
    bay = sshd_bay_factory(1)
    silent_ip = "127.77.249.251"
    with bay.silent_node(silent_ip) as silent:
        nodes = bay.nodes() + [silent]
        slow = asyncio.run(outcome(shell_of(bay, nodes, connect_timeout=2), "bseed-silent"))
    assert isinstance(slow, ConnectTimeout)
    assert slow.reason == (f"ssh connection to {silent_ip}:{bay.port} timed out after 2s "
                           "(the SSH connect timeout)")

    stuck = asyncio.run(outcome(shell_of(bay), bay.slaves[0].name, "sleep 30", timeout=1))
    assert isinstance(stuck, CommandTimeout)
    assert stuck.reason == "`sleep` did not finish in 1s (the command's time limit)"


def test_nodes_without_public_address_ride_on_the_bastions_one_connection(sshd_bay_factory):
    bay = sshd_bay_factory(2, master=True)
    master = bay.master.node(public=True)
    slaves = bay.nodes(public=False)

    async def both():
        async with shell_of(bay, [master, *slaves]) as shell:  # the bastion: the first public node
            answers = [(await shell.run(node.name, "echo ok")).stdout.strip() for node in slaves]
            tunnels = {shell.address(node.name) for node in slaves}
            return answers, tunnels, shell.connected

    answers, addresses, connections = asyncio.run(both())
    assert answers == ["ok", "ok"]
    assert addresses == {f"{s.ip}:{bay.port} via {bay.master.ip}" for s in bay.slaves}
    # The master's, and one per slave through it.
    assert connections == sorted(f"{node.ip}:{bay.port}" for node in [bay.master, *bay.slaves])

    bay.master.stop_sshd()
    behind = asyncio.run(outcome(shell_of(bay, [master, *slaves]), slaves[0].name))
    assert isinstance(behind, Unreachable)
    assert behind.reason.startswith(f"bastion {bay.master.ip}:{bay.port}: connection refused")


def test_the_library_seeds_through_curl_by_default(sshd_bay_factory):
    # No `bayctl` on the nodes' side would do: the default way never starts it.
    bay = sshd_bay_factory(1)
    results = seed_policy(bay.nodes(), POLICY, remote_bayctl="/nonexistent/bayctl", **bay.seed_options())
    assert [r.status for r in results] == ["seeded"]


POLICY = """apiVersion: bayctl/v1
kind: GroupPolicy
groups: {web: 100, db: 200}
rules:
  - {from: web, to: db, ports: [tcp/5432]}
"""

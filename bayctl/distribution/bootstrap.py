"""Set up a bay's ZooKeeper distribution once, at create time.

The secrets are made here, the bay's znodes get their ACLs, and every slave's agent is given
the ZooKeeper's address and its read secret over SSH (its API's `PUT /v1/distribution`
through curl, as seeding reaches the agent): the one time the secret travels, on stdin,
never on a command line or in a log.
"""

import asyncio
import json

from bayctl.errors import NodeError, SeedError
from bayctl.providers.base import SLAVE

AGENT_PATH = "/v1/distribution"


def setup_zookeeper(state, nodes, hosts: str, *, ssh_user: str, ssh_key: str, owns_root: bool,
                    tunnel: bool = False, status=None):
    """Make (or reuse) the bay's credentials, prepare its znodes, give every slave's agent its
    configuration, and see every agent connect. `tunnel`: bayctl reaches `hosts` through the
    master's SSH (the slaves directly, on the bay's network: an agent that cannot reach it is
    a SeedError naming it, so a bay never relies on a way its slaves do not have)."""
    from bayctl.distribution import STATE_KEY, ZOOKEEPER, zookeeper

    creds = zookeeper.Credentials.load(state.directory)
    if creds is None:
        creds = zookeeper.Credentials.new(hosts, state.name, owns_root, tunnel)
        creds.save(state.directory)
    client = zookeeper.connect(creds, via=dict(nodes=nodes, bay_state_dir=state.directory, ssh_user=ssh_user,
                                               ssh_key=ssh_key))
    try:
        zookeeper.prepare(client, creds)
        slaves = [node for node in nodes if node.role == SLAVE]
        configs = {node.name: creds.agent_config(node.name) for node in slaves}
        asyncio.run(_tell_agents(state, nodes, configs, ssh_user=ssh_user, ssh_key=ssh_key, status=status))
        absent = zookeeper.wait_for_agents(client, creds, list(configs), AGENTS_CONNECT_TIMEOUT)
    finally:
        zookeeper.disconnect(client)
    if absent:
        raise SeedError(f"{', '.join(absent)}: the agent did not connect to the bay's ZooKeeper {hosts} "
                        f"within {AGENTS_CONNECT_TIMEOUT:g}s (can the slaves reach that port?)")
    state.extra[STATE_KEY] = ZOOKEEPER
    state.save()
    return creds


def forget_zookeeper(state, nodes, *, ssh_user: str, ssh_key: str):
    """Tell every slave's agent to stop watching and forget its secret (the bay went back to
    SSH seeding after a setup that gave some of them a configuration)."""
    slaves = {node.name: None for node in nodes if node.role == SLAVE}
    asyncio.run(_tell_agents(state, nodes, slaves, ssh_user=ssh_user, ssh_key=ssh_key, status=None))


# Seconds the agents have to connect once configured: a reachable ZooKeeper takes one or two
# (a session's handshake); more means a port closed between the slaves and the master.
AGENTS_CONNECT_TIMEOUT = 60.0


def curl_command(sudo: bool, method: str = "PUT") -> str:
    body = "-H 'Content-Type: application/json' --data-binary @- " if method == "PUT" else ""
    command = ('curl -sS --unix-socket "${BAYCTL_AGENT_SOCKET:-/run/bayctl/agent.sock}" '
               f"-X {method} {body}-w '\\n%{{http_code}}' http://agent{AGENT_PATH}")
    return f"sudo -n {command}" if sudo else command


async def _tell_agents(state, nodes, configs, *, ssh_user, ssh_key, status):
    """PUT each node's configuration to its agent's API over SSH (None: DELETE it)."""
    from bayctl.remote import BayShell

    sudo = ssh_user != "root"
    done = []
    async with BayShell(nodes, bay_state_dir=state.directory, ssh_user=ssh_user, ssh_key=ssh_key) as shell:

        async def one(name, config):
            if config is None:
                completed = await shell.run(name, curl_command(sudo, "DELETE"), timeout=60)
            else:
                completed = await shell.run(name, curl_command(sudo), input=json.dumps(config), timeout=60)
            answer = (completed.stdout or "").rstrip().rsplit("\n", 1)
            code = answer[-1] if answer else ""
            if completed.exit_status != 0 or code != "200":
                body = answer[0] if len(answer) > 1 else (completed.stderr or "").strip()
                what = "take" if config is not None else "drop"
                raise NodeError(f"{name}: the agent did not {what} its ZooKeeper configuration "
                                f"(HTTP {code or '-'}): {body[:200]}")
            done.append(name)
            if status is not None:
                status.update(f"{name} watches the bay's ZooKeeper", len(done), len(configs))

        results = await asyncio.gather(*(one(n, c) for n, c in configs.items()), return_exceptions=True)
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    if failures:
        raise SeedError("; ".join(failures))

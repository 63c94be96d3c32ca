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
    configuration. `tunnel`: bayctl reaches `hosts` through the master's SSH (the slaves
    directly, on the bay's network)."""
    from bayctl.distribution import STATE_KEY, ZOOKEEPER, zookeeper

    creds = zookeeper.Credentials.load(state.directory)
    if creds is None:
        creds = zookeeper.Credentials.new(hosts, state.name, owns_root, tunnel)
        creds.save(state.directory)
    client = zookeeper.connect(creds, via=dict(nodes=nodes, bay_state_dir=state.directory, ssh_user=ssh_user,
                                               ssh_key=ssh_key))
    try:
        zookeeper.prepare(client, creds)
    finally:
        zookeeper.disconnect(client)
    slaves = [node for node in nodes if node.role == SLAVE]
    configs = {node.name: creds.agent_config(node.name) for node in slaves}
    asyncio.run(_seed_configs(state, nodes, configs, ssh_user=ssh_user, ssh_key=ssh_key, status=status))
    state.extra[STATE_KEY] = ZOOKEEPER
    state.save()
    return creds


def curl_command(sudo: bool) -> str:
    command = ('curl -sS --unix-socket "${BAYCTL_AGENT_SOCKET:-/run/bayctl/agent.sock}" -X PUT '
               "-H 'Content-Type: application/json' --data-binary @- -w '\\n%{http_code}' "
               f"http://agent{AGENT_PATH}")
    return f"sudo -n {command}" if sudo else command


async def _seed_configs(state, nodes, configs, *, ssh_user, ssh_key, status):
    from bayctl.remote import BayShell

    command = curl_command(ssh_user != "root")
    done = []
    async with BayShell(nodes, bay_state_dir=state.directory, ssh_user=ssh_user, ssh_key=ssh_key) as shell:

        async def one(name, config):
            completed = await shell.run(name, command, input=json.dumps(config), timeout=60)
            answer = (completed.stdout or "").rstrip().rsplit("\n", 1)
            code = answer[-1] if answer else ""
            if completed.exit_status != 0 or code != "200":
                body = answer[0] if len(answer) > 1 else (completed.stderr or "").strip()
                raise NodeError(f"{name}: the agent did not take its ZooKeeper configuration "
                                f"(HTTP {code or '-'}): {body[:200]}")
            done.append(name)
            if status is not None:
                status.update(f"{name} watches the bay's ZooKeeper", len(done), len(configs))

        results = await asyncio.gather(*(one(n, c) for n, c in configs.items()), return_exceptions=True)
    failures = [str(r) for r in results if isinstance(r, BaseException)]
    if failures:
        raise SeedError("; ".join(failures))

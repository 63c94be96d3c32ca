"""Commands on a bay's nodes over SSH: the one way bayctl reaches a node after seeding.

Uses the bay's own trust (its known_hosts, through bayctl.seed.hostkeys: recorded on first
contact, then enforced) and the bay's key only (no ssh-agent, no ~/.ssh/config). Nodes
without a public address are reached through the master, as seeding does. The same code
reaches a local bay's namespaces and a cloud bay's servers.
"""

import asyncio
import contextlib
from typing import Dict, Optional, Sequence

import asyncssh

from bayctl.errors import NodeError
from bayctl.seed.hostkeys import TofuKnownHosts, no_preloaded_keys


class BayShell:
    """One SSH connection per node (opened on first use), shared by every command."""

    def __init__(self, nodes: Sequence, *, bay_state_dir: str, ssh_user: str, ssh_key: str,
                 connect_timeout: float = 15.0):
        self.nodes = {node.name: node for node in nodes}
        self.master = next((node for node in nodes if node.public_ip), None)
        self._trust = TofuKnownHosts(bay_state_dir)
        try:
            key = asyncssh.read_private_key(ssh_key)
        except (OSError, asyncssh.KeyImportError) as exc:
            raise NodeError(f"cannot read the bay's SSH key {ssh_key}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
        self._options = dict(
            username=ssh_user, client_keys=[key], known_hosts=no_preloaded_keys,
            client_factory=self._trust.client_factory(), agent_path=None, config=None,
            preferred_auth="publickey", connect_timeout=connect_timeout,
        )
        self._conns: Dict[str, asyncssh.SSHClientConnection] = {}
        self._locks: Dict[str, asyncio.Lock] = {}

    async def connection(self, name: str) -> asyncssh.SSHClientConnection:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self._conns:
                node = self.nodes[name]
                try:
                    if node.public_ip:
                        conn = await asyncssh.connect(node.public_ip, 22, **self._options)
                    else:
                        if self.master is None:
                            raise NodeError(f"{name} has no public address and the bay no master to reach it")
                        tunnel = await self.connection(self.master.name)
                        conn = await asyncssh.connect(node.private_ip, 22, tunnel=tunnel, **self._options)
                except NodeError:
                    raise
                except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
                    raise NodeError(f"{name}: ssh: {_reason(exc)}") from None
                self._conns[name] = conn
            return self._conns[name]

    async def run(self, name: str, command: str, input: Optional[str] = None,
                  timeout: Optional[float] = 120) -> asyncssh.SSHCompletedProcess:
        conn = await self.connection(name)
        try:
            return await asyncio.wait_for(conn.run(command, input=input, check=False), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise NodeError(f"{name}: `{command.split()[0]}` did not finish in {timeout:g}s") from None
        except asyncssh.Error as exc:
            raise NodeError(f"{name}: ssh: {_reason(exc)}") from None

    async def start(self, name: str, command: str) -> asyncssh.SSHClientProcess:
        """A long-running command with its stdin/stdout open (closing stdin ends it)."""
        conn = await self.connection(name)
        return await conn.create_process(command)

    async def close(self) -> None:
        # Slaves first: their connections ride on the master's.
        for name in sorted(self._conns, key=lambda n: self.nodes[n].public_ip is not None):
            conn = self._conns.pop(name)
            conn.close()
            with contextlib.suppress(Exception):
                await conn.wait_closed()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


def _reason(exc) -> str:
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return "host key refused (it differs from the one recorded in the bay's known_hosts)"
    if isinstance(exc, asyncssh.PermissionDenied):
        return "the node refused the bay's key"
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.reason
    if isinstance(exc, asyncssh.ChannelOpenError):
        return f"the master could not reach it: {exc.reason}"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)

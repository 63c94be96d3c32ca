"""Commands on a bay's nodes over SSH: the one way bayctl reaches a node.

Seeding, verification, health and wait-for-agents all come through here. The bay's own
trust (its known_hosts, through hostkeys.py: recorded on first contact, then enforced) and the
bay's key only (no ssh-agent, no ~/.ssh/config). Nodes without a public address are reached
through the bastion (the bay's master): its connection is opened once and every tunnel rides on
it. The same code reaches a local bay's namespaces and a cloud bay's servers. Every failure is
a typed SshError (errors.py), each timeout named for what fired.
"""

import asyncio
import contextlib
import dataclasses
from typing import Dict, Optional, Sequence, Tuple

import asyncssh

from bayctl.remote.errors import (
    CommandTimeout,
    ConnectTimeout,
    Disconnected,
    HostKeyChanged,
    KeyRefused,
    SshError,
    TrustUnreadable,
    Unreachable,
)
from bayctl.remote.hostkeys import TofuKnownHosts, host_pattern, no_preloaded_keys
from bayctl.remote.keys import read_private_key

# AES-GCM first: asyncssh makes a new ChaCha20 context for every packet (measured: ~3 ms of
# the seeder's CPU per node, of ~9), AES-GCM one per key. Both are AEAD ciphers in OpenSSH's
# default list; asyncssh's own defaults follow, so a node that refuses GCM still connects.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")

# `bastion` left out: the bay's master, the first node with a public address.
FIRST_PUBLIC = object()


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where a node's sshd answers, and whether the bastion stands between."""

    host: str
    port: int
    tunnelled: bool

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class BayShell:
    """One SSH connection per node (opened on first use), shared by every command to it.

    nodes: Node-like (name, public_ip, private_ip; ssh_port if not `port`).
    bastion: what nodes without a public address are reached through (a Node-like or an
    address; None: such nodes are reached directly at their private address). Left out: the
    first of `nodes` with a public address.
    """

    def __init__(self, nodes: Sequence, *, bay_state_dir, ssh_user: str, ssh_key,
                 bastion=FIRST_PUBLIC, port: int = 22, connect_timeout: float = 15.0):
        self.nodes = {node.name: node for node in nodes}
        if bastion is FIRST_PUBLIC:
            bastion = next((node for node in nodes if node.public_ip), None)
        self.port = port
        self.bastion: Optional[Endpoint] = self._bastion_endpoint(bastion)
        self.connect_timeout = connect_timeout
        try:
            self._trust = TofuKnownHosts(bay_state_dir)
        except ValueError as exc:  # a damaged trust file: refuse rather than trust anything
            raise TrustUnreadable(str(exc)) from None
        self._options = dict(
            username=ssh_user, client_keys=[read_private_key(ssh_key)], known_hosts=no_preloaded_keys,
            client_factory=self._trust.client_factory(),
            agent_path=None,  # only the bay's key; never whatever an ssh-agent offers
            config=None,  # and never ~/.ssh/config
            preferred_auth="publickey", connect_timeout=connect_timeout,
            encryption_algs=_encryption_algs(),
        )
        self._conns: Dict[Endpoint, asyncssh.SSHClientConnection] = {}
        self._locks: Dict[Endpoint, asyncio.Lock] = {}

    # -- where ---------------------------------------------------------------------------

    def endpoint(self, name: str) -> Endpoint:
        """Where node `name` is reached (Unreachable when it has no address at all)."""
        node = self.nodes[name]
        port = getattr(node, "ssh_port", None) or self.port
        if node.public_ip:
            return Endpoint(node.public_ip, port, tunnelled=False)
        if not node.private_ip:
            raise Unreachable("the node has no address", node=name)
        return Endpoint(node.private_ip, port, tunnelled=self.bastion is not None)

    def address(self, name: str) -> str:
        """host:port of node `name`, "via <bastion>" when tunnelled (for reports)."""
        try:
            endpoint = self.endpoint(name)
        except Unreachable:
            return ""
        return f"{endpoint} via {self.bastion.host}" if endpoint.tunnelled else str(endpoint)

    def _bastion_endpoint(self, bastion) -> Optional[Endpoint]:
        if bastion is None:
            return None
        if isinstance(bastion, str):
            return Endpoint(bastion, self.port, tunnelled=False)
        host = getattr(bastion, "public_ip", None) or getattr(bastion, "private_ip", None) or ""
        return Endpoint(host, getattr(bastion, "ssh_port", None) or self.port, tunnelled=False)

    # -- connections ---------------------------------------------------------------------

    async def bastion_connection(self) -> asyncssh.SSHClientConnection:
        """The master connection every tunnel rides on; its failure says "bastion host:port"."""
        if self.bastion is None:
            raise Unreachable("no bastion to reach nodes without a public address through")
        try:
            return await self._connect(self.bastion)
        except SshError as err:
            raise err.behind(f"bastion {self.bastion}") from None

    async def connection(self, name: str) -> asyncssh.SSHClientConnection:
        try:
            endpoint = self.endpoint(name)
            tunnel = await self.bastion_connection() if endpoint.tunnelled else None
            return await self._connect(endpoint, tunnel)
        except SshError as err:
            raise err.about(name) from None

    async def _connect(self, endpoint: Endpoint, tunnel=None) -> asyncssh.SSHClientConnection:
        lock = self._locks.setdefault(endpoint, asyncio.Lock())
        async with lock:
            if endpoint not in self._conns:
                self._conns[endpoint] = await self._open(endpoint, tunnel)
            return self._conns[endpoint]

    async def _open(self, endpoint: Endpoint, tunnel) -> asyncssh.SSHClientConnection:
        host, port = endpoint.host, endpoint.port
        try:
            return await asyncssh.connect(host, port, tunnel=tunnel,
                                          server_host_key_algs=self._trust.host_key_algs(host, port),
                                          **self._options)
        except (asyncio.TimeoutError, TimeoutError):
            # asyncssh's connect_timeout (TCP and SSH handshake), not a caller's overall limit.
            raise ConnectTimeout(f"ssh connection to {endpoint} timed out after {self.connect_timeout:g}s "
                                 "(the SSH connect timeout)") from None
        except (OSError, asyncssh.Error) as exc:
            raise self._typed(exc, endpoint) from None

    def _typed(self, exc, endpoint: Endpoint) -> SshError:
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            refused = self._trust.refused.get(host_pattern(endpoint.host, endpoint.port))
            return refused if refused else HostKeyChanged(f"host key not accepted: {exc.reason}")
        if isinstance(exc, asyncssh.PermissionDenied):
            return KeyRefused("ssh: the node refused the bay's key (permission denied)")
        if isinstance(exc, asyncssh.ChannelOpenError):
            return Unreachable(f"the bastion could not reach {endpoint}: {exc.reason}")
        if isinstance(exc, asyncssh.Error):
            return Disconnected(f"ssh: {exc.reason}")
        if isinstance(exc, ConnectionRefusedError):
            return Unreachable(f"connection refused ({endpoint}): is sshd running on the node?")
        return Unreachable(f"cannot reach {endpoint}: {exc.strerror or exc}")

    @property
    def connected(self):
        """host:port of every open connection (the bastion's once, however many ride on it)."""
        return sorted(str(endpoint) for endpoint in self._conns)

    async def disconnect(self, name: str) -> None:
        """Close node `name`'s connection (a fan-out over many nodes holds few at a time)."""
        with contextlib.suppress(SshError):
            endpoint = self.endpoint(name)
            if endpoint != self.bastion:  # tunnels ride on it
                await _close(self._conns.pop(endpoint, None))

    async def close(self) -> None:
        # The bastion last: the tunnelled connections ride on it.
        for endpoint in sorted(self._conns, key=lambda e: e == self.bastion):
            await _close(self._conns.pop(endpoint))

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # -- commands ------------------------------------------------------------------------

    async def run(self, name: str, command: str, input: Optional[str] = None,
                  timeout: Optional[float] = 120) -> asyncssh.SSHCompletedProcess:
        """Run `command` on node `name` (never raises for its exit status: see .exit_status)."""
        conn = await self.connection(name)
        try:
            return await asyncio.wait_for(conn.run(command, input=input, check=False), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise CommandTimeout(f"`{command.split()[0]}` did not finish in {timeout:g}s "
                                 "(the command's time limit)", node=name) from None
        except asyncssh.Error as exc:
            raise Disconnected(f"ssh: {exc.reason}", node=name) from None

    async def outputs(self, name: str, command: str, input: Optional[str] = None,
                      timeout: Optional[float] = 120) -> Tuple[Optional[int], str, str]:
        """(exit status, stdout, stderr) of `command` on node `name`."""
        done = await self.run(name, command, input=input, timeout=timeout)
        return done.exit_status, done.stdout or "", done.stderr or ""

    async def start(self, name: str, command: str) -> asyncssh.SSHClientProcess:
        """A long-running command with its stdin/stdout open (closing stdin ends it)."""
        conn = await self.connection(name)
        return await conn.create_process(command)


def _encryption_algs():
    from asyncssh.encryption import get_default_encryption_algs

    defaults = [alg.decode() for alg in get_default_encryption_algs()]
    preferred = [alg for alg in PREFERRED_CIPHERS if alg in defaults]
    return preferred + [alg for alg in defaults if alg not in preferred]


async def _close(conn) -> None:
    if conn is None:
        return
    conn.close()
    with contextlib.suppress(Exception):
        await conn.wait_closed()

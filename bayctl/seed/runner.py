"""Push one group policy to every node's agent over SSH, and prove each one took it.

Per node, over ONE SSH connection (direct, or tunnelled through the bay's master when the
node has no public address): the policy is applied unless the node already holds the
policy's digest (then it is left alone: ``unchanged``), and the node's digest is read back
(``seeded`` or ``unchanged`` only if it matches). With ``remote="curl"`` that is one remote
command (a conditional PUT, then a GET: see remote.py); with ``remote="cli"`` three (show,
apply when the digest differs, show). Nodes are worked on
concurrently, at most ``concurrency`` at a time, each within its own time limit; a node that
fails is reported with its reason and never stops the others.
"""

import asyncio
import dataclasses
import logging
import os
import time
from typing import Callable, List, Optional, Sequence

import asyncssh

from bayctl.errors import NodeError, SeedError
from bayctl.seed.hostkeys import TofuKnownHosts, host_pattern, no_preloaded_keys
from bayctl.seed.remote import RemoteAgent

LOG = logging.getLogger(__name__)

# AES-GCM first: asyncssh makes a new ChaCha20 context for every packet (measured: ~3 ms of
# the seeder's CPU per node, of ~9), AES-GCM one per key. Both are AEAD ciphers in OpenSSH's
# default list; asyncssh's own defaults follow, so a node that refuses GCM still connects.
_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")

SEEDED, UNCHANGED, FAILED = "seeded", "unchanged", "failed"


@dataclasses.dataclass
class NodeResult:
    """The outcome for one node."""

    node: str
    status: str  # SEEDED | UNCHANGED | FAILED
    reason: str = ""
    digest: Optional[str] = None  # what the node reports after seeding (None if unknown)
    address: str = ""  # host:port that was contacted ("via <bastion>" when tunnelled)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != FAILED

    def __str__(self) -> str:
        if self.ok:
            return f"{self.node}: {self.status} ({(self.digest or '')[:12]})"
        return f"{self.node}: failed: {self.reason}"


ProgressCallback = Callable[[NodeResult], None]


@dataclasses.dataclass
class _Target:
    name: str
    host: str
    port: int
    tunnelled: bool


def seed_policy(nodes, policy_text: str, **options) -> List[NodeResult]:
    """Synchronous form of :func:`seed_policy_async` (same arguments)."""
    return asyncio.run(seed_policy_async(nodes, policy_text, **options))


async def seed_policy_async(
    nodes: Sequence,
    policy_text: str,
    *,
    bay_state_dir,
    ssh_user: str,
    ssh_key,
    bastion=None,
    concurrency: int = 32,
    agent_socket: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    ssh_port: int = 22,
    remote: str = "cli",
    remote_bayctl: str = "bayctl",
    sudo: Optional[bool] = None,
    connect_timeout: float = 15.0,
    node_timeout: float = 90.0,
    raise_on_failure: bool = True,
) -> List[NodeResult]:
    """Seed `policy_text` on every node of `nodes` (Node-like: name, public_ip, private_ip).

    bay_state_dir: where the bay's known_hosts lives (host keys: trust on first use, then enforced).
    ssh_key: path of the private key file (or an asyncssh key). Its contents are never logged.
    bastion: the master (a Node or an address) that nodes without a public_ip are reached through.
    agent_socket: the agent's socket on the nodes (default: the node's own default).
    remote: "cli" (bayctl node show/apply on the node) or "curl" (the agent's HTTP API).
    sudo: run the node commands through `sudo -n` (default: when ssh_user is not root).
    progress: called with each NodeResult as soon as that node is done.
    Returns the results in the order of `nodes`; raises SeedError (with .results) if any node
    failed and raise_on_failure is true. An invalid policy raises PolicyError before any contact.
    """
    from bayctl.policy import parse_policy  # a bad policy stops everything before any SSH

    wanted = parse_policy(policy_text).digest
    key = _load_key(ssh_key)
    try:
        trust = TofuKnownHosts(bay_state_dir)
    except ValueError as exc:  # a damaged trust file: refuse rather than trust anything
        raise SeedError(str(exc)) from None
    agent = RemoteAgent(remote, agent_socket=agent_socket, bayctl=remote_bayctl,
                        sudo=ssh_user != "root" if sudo is None else sudo)
    connect_options = dict(
        username=ssh_user,
        client_keys=[key],
        known_hosts=no_preloaded_keys,
        client_factory=trust.client_factory(),
        agent_path=None,  # only the bay's key; never whatever an ssh-agent offers
        config=None,  # and never ~/.ssh/config
        preferred_auth="publickey",
        connect_timeout=connect_timeout,
        encryption_algs=_encryption_algs(),
    )
    targets = [_target(node, bastion, ssh_port) for node in nodes]
    gate = asyncio.Semaphore(max(1, concurrency))

    bastion_conn, bastion_failure = None, None
    if any(target.tunnelled for target in targets):
        bastion_conn, bastion_failure = await _connect_bastion(bastion, ssh_port, connect_options, trust)

    async def one(target: _Target) -> NodeResult:
        async with gate:
            started = time.monotonic()
            if target.tunnelled and bastion_failure:
                result = NodeResult(target.name, FAILED, bastion_failure, address=_address(target, bastion))
            else:
                result = await _seed_one(target, bastion_conn, connect_options, trust, agent, policy_text,
                                         wanted, node_timeout, bastion)
            result.seconds = round(time.monotonic() - started, 3)
        log = LOG.info if result.ok else LOG.warning
        log("%s", result)
        if progress:
            progress(result)
        return result

    try:
        results = list(await asyncio.gather(*(one(target) for target in targets)))
    finally:
        if bastion_conn is not None:
            bastion_conn.close()
            await bastion_conn.wait_closed()

    failed = [result for result in results if not result.ok]
    if failed and raise_on_failure:
        raise SeedError(_summary(failed, len(results)), results=results)
    return results


def _encryption_algs():
    from asyncssh.encryption import get_default_encryption_algs

    defaults = [alg.decode() for alg in get_default_encryption_algs()]
    return [alg for alg in _CIPHERS if alg in defaults] + [alg for alg in defaults if alg not in _CIPHERS]


def _target(node, bastion, default_port) -> _Target:
    port = getattr(node, "ssh_port", None) or default_port
    if getattr(node, "public_ip", None):
        return _Target(node.name, node.public_ip, port, tunnelled=False)
    if not getattr(node, "private_ip", None):
        return _Target(node.name, "", port, tunnelled=False)
    return _Target(node.name, node.private_ip, port, tunnelled=bastion is not None)


def _address(target: _Target, bastion) -> str:
    address = f"{target.host}:{target.port}"
    return f"{address} via {_bastion_host(bastion)}" if target.tunnelled else address


def _bastion_host(bastion) -> str:
    if isinstance(bastion, str):
        return bastion
    return getattr(bastion, "public_ip", None) or getattr(bastion, "private_ip", None) or ""


def _load_key(ssh_key):
    if isinstance(ssh_key, asyncssh.SSHKey):
        return ssh_key
    path = os.fspath(ssh_key)
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as exc:
        # The exception text names the problem (missing, encrypted, bad format), never the key.
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SeedError(f"cannot read the SSH key {path}: {reason}") from None


async def _connect_bastion(bastion, default_port, connect_options, trust):
    host = _bastion_host(bastion)
    port = getattr(bastion, "ssh_port", None) or default_port
    try:
        conn = await asyncssh.connect(host, port, server_host_key_algs=trust.host_key_algs(host, port),
                                      **connect_options)
        return conn, None
    except Exception as exc:  # every failure becomes the reason of each tunnelled node
        return None, f"bastion {host}:{port}: {_ssh_reason(exc, host, port, trust)}"


async def _seed_one(target, bastion_conn, connect_options, trust, agent, policy_text, wanted,
                    node_timeout, bastion) -> NodeResult:
    address = _address(target, bastion)
    if not target.host:
        return NodeResult(target.name, FAILED, "the node has no address", address=address)
    stage = ["connecting"]  # where the node's time limit struck, for its reason
    try:
        return await asyncio.wait_for(
            _converse(target, bastion_conn, connect_options, trust, agent, policy_text, wanted, address,
                      stage),
            node_timeout)
    except NodeError as exc:
        return NodeResult(target.name, FAILED, str(exc), address=address)
    except (asyncio.TimeoutError, TimeoutError):
        return NodeResult(target.name, FAILED,
                          f"timed out after {node_timeout:g}s (the node's time limit) while {stage[0]}",
                          address=address)
    except Exception as exc:  # a node's failure is its result, never the run's end
        reason = _ssh_reason(exc, target.host, target.port, trust)
        return NodeResult(target.name, FAILED, reason, address=address)


async def _converse(target, bastion_conn, connect_options, trust, agent, policy_text, wanted, address,
                    stage):
    tunnel = bastion_conn if target.tunnelled else None
    algs = trust.host_key_algs(target.host, target.port)
    try:
        conn = await asyncssh.connect(target.host, target.port, tunnel=tunnel, server_host_key_algs=algs,
                                      **connect_options)
    except (asyncio.TimeoutError, TimeoutError):
        # asyncssh's connect_timeout (TCP and SSH handshake), not the node's overall limit.
        raise NodeError(f"ssh connection to {target.host}:{target.port} timed out after "
                        f"{connect_options['connect_timeout']:g}s (the SSH connect timeout)") from None
    async with conn:
        if agent.one_command:
            stage[0] = "applying the policy unless the node holds it, and reading it back"
            applied, readback = agent.parse_seed(*await _run(conn, agent.seed_command(wanted), policy_text))
            return _verified(target, address, wanted, readback, SEEDED if applied else UNCHANGED)
        stage[0] = "reading the node's policy"
        current = agent.parse_digest(*await _run(conn, agent.show_command()))
        if current == wanted:
            return NodeResult(target.name, UNCHANGED, digest=current, address=address)
        stage[0] = "applying the policy"
        agent.check_applied(*await _run(conn, agent.apply_command(), policy_text))
        stage[0] = "reading the policy back"
        readback = agent.parse_digest(*await _run(conn, agent.show_command()))
        return _verified(target, address, wanted, readback, SEEDED)


def _verified(target, address, wanted, readback, status) -> NodeResult:
    if readback != wanted:
        return NodeResult(target.name, FAILED,
                          f"read-back digest {(readback or 'none')[:12]} differs from the "
                          f"policy's {wanted[:12]}", digest=readback, address=address)
    return NodeResult(target.name, status, digest=readback, address=address)


async def _run(conn, command, stdin=None):
    completed = await conn.run(command, input=stdin, check=False)
    return completed.exit_status, completed.stdout or "", completed.stderr or ""


def _ssh_reason(exc, host, port, trust) -> str:
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        refused = trust.refused.get(host_pattern(host, port))
        return str(refused) if refused else f"host key not accepted: {exc.reason}"
    if isinstance(exc, asyncssh.PermissionDenied):
        return "ssh: the node refused the bay's key (permission denied)"
    if isinstance(exc, asyncssh.ChannelOpenError):
        return f"the bastion could not reach {host}:{port}: {exc.reason}"
    if isinstance(exc, asyncssh.DisconnectError):
        return f"ssh: {exc.reason}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused ({host}:{port}): is sshd running on the node?"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"ssh connection to {host}:{port} timed out"
    if isinstance(exc, OSError):
        return f"cannot reach {host}:{port}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _summary(failed, total) -> str:
    named = "; ".join(f"{result.node} ({result.reason})" for result in failed)
    return f"seeding failed on {len(failed)} of {total} nodes: {named}"

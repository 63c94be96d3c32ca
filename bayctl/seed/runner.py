"""Push one group policy to every node's agent over SSH, and prove each one took it.

Per node, over ONE SSH connection (bayctl.remote.BayShell: direct, or tunnelled through the bay's
master when the node has no public address): the policy is applied unless the node already holds the
policy's digest (then it is left alone: ``unchanged``), and the node's digest is read back
(``seeded`` or ``unchanged`` only if it matches). With ``remote="curl"`` (the default) that is
one remote command (a conditional PUT, then a GET: see remote.py); with ``remote="cli"`` three (show,
apply when the digest differs, show). Nodes are worked on
concurrently, at most ``concurrency`` at a time, each within its own time limit; a node that
fails is reported with its reason and never stops the others.
"""

import asyncio
import dataclasses
import logging
import time
from typing import Callable, List, Optional, Sequence

from bayctl.errors import NodeError, SeedError
from bayctl.remote import BayShell, SshError
from bayctl.seed.remote import remote_agent

LOG = logging.getLogger(__name__)

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
    remote: str = "curl",
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
    remote: "curl" (the agent's HTTP API, one command per node) or "cli" (bayctl node show/apply
    on the node, three commands).
    sudo: run the node commands through `sudo -n` (default: when ssh_user is not root).
    progress: called with each NodeResult as soon as that node is done.
    Returns the results in the order of `nodes`; raises SeedError (with .results) if any node
    failed and raise_on_failure is true. An invalid policy raises PolicyError before any contact.
    """
    from bayctl.policy import parse_policy  # a bad policy stops everything before any SSH

    wanted = parse_policy(policy_text).digest
    agent = remote_agent(remote, agent_socket=agent_socket, bayctl=remote_bayctl,
                         sudo=ssh_user != "root" if sudo is None else sudo)
    try:
        shell = BayShell(nodes, bay_state_dir=bay_state_dir, ssh_user=ssh_user, ssh_key=ssh_key,
                         bastion=bastion, port=ssh_port, connect_timeout=connect_timeout)
    except SshError as exc:  # an unreadable key or trust file: nothing is tried
        raise SeedError(str(exc)) from None
    gate = asyncio.Semaphore(max(1, concurrency))

    async with shell:
        bastion_failure = await _open_bastion(shell)

        async def one(node) -> NodeResult:
            async with gate:
                started = time.monotonic()
                result = await _seed_one(shell, node.name, agent, policy_text, wanted, node_timeout,
                                         bastion_failure)
                result.seconds = round(time.monotonic() - started, 3)
            log = LOG.info if result.ok else LOG.warning
            log("%s", result)
            if progress:
                progress(result)
            return result

        results = list(await asyncio.gather(*(one(node) for node in nodes)))

    failed = [result for result in results if not result.ok]
    if failed and raise_on_failure:
        raise SeedError(_summary(failed, len(results)), results=results)
    return results


async def _open_bastion(shell: BayShell) -> Optional[SshError]:
    """The bastion's connection, once for all tunnelled nodes: its failure is each one's reason."""
    if not any(_tunnelled(shell, name) for name in shell.nodes):
        return None
    try:
        await shell.bastion_connection()
    except SshError as exc:
        return exc
    return None


def _tunnelled(shell: BayShell, name: str) -> bool:
    try:
        return shell.endpoint(name).tunnelled
    except SshError:
        return False


async def _seed_one(shell, name, agent, policy_text, wanted, node_timeout, bastion_failure) -> NodeResult:
    address = shell.address(name)
    if bastion_failure is not None and _tunnelled(shell, name):
        return NodeResult(name, FAILED, bastion_failure.reason, address=address)
    stage = ["connecting"]  # where the node's time limit struck, for its reason

    async def run(command, stdin):
        return await shell.outputs(name, command, input=stdin, timeout=None)  # the node's limit rules

    async def converse():
        await shell.connection(name)
        return await agent.seed(run, policy_text, wanted, stage)

    try:
        applied, readback = await asyncio.wait_for(converse(), node_timeout)
    except SshError as exc:
        return NodeResult(name, FAILED, exc.reason, address=address)
    except NodeError as exc:
        return NodeResult(name, FAILED, str(exc), address=address)
    except (asyncio.TimeoutError, TimeoutError):
        return NodeResult(name, FAILED,
                          f"timed out after {node_timeout:g}s (the node's time limit) while {stage[0]}",
                          address=address)
    except Exception as exc:  # a node's failure is its result, never the run's end
        return NodeResult(name, FAILED, f"{type(exc).__name__}: {exc}", address=address)
    finally:
        await shell.disconnect(name)  # at most `concurrency` connections open at a time
    return _verified(name, address, wanted, readback, SEEDED if applied else UNCHANGED)


def _verified(name, address, wanted, readback, status) -> NodeResult:
    if readback != wanted:
        return NodeResult(name, FAILED,
                          f"read-back digest {(readback or 'none')[:12]} differs from the "
                          f"policy's {wanted[:12]}", digest=readback, address=address)
    return NodeResult(name, status, digest=readback, address=address)


def _summary(failed, total) -> str:
    named = "; ".join(f"{result.node} ({result.reason})" for result in failed)
    return f"seeding failed on {len(failed)} of {total} nodes: {named}"

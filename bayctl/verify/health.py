"""Per-node health of a bay, as `bayctl show` and `bayctl list` print it: is each slave's
agent up, and does it enforce the policy the bay was seeded with?

One round over the bay's SSH path (bayctl.remote: the bay's key and known_hosts,
slaves through the master): one `curl GET /v1/policy` per slave, all slaves at once (the
same command seeding uses for its read-back, bayctl.seed.remote). No probe, no Python on
the nodes. bench/local_bay_size.py on a 2-core machine: 0.2-0.3 s for 2 slaves, 0.3 s for 8,
0.5 s for 16 (the SSH connections through the master dominate); `verify` is the full
measurement (5-10 s).
"""

import asyncio
import dataclasses
from typing import Dict, List, Optional

from bayctl.errors import NodeError
from bayctl.providers.base import SLAVE
from bayctl.remote import BayShell
from bayctl.seed.remote import CurlAgent

UP, DOWN, UNREACHABLE = "up", "down", "unreachable"


@dataclasses.dataclass
class NodeHealth:
    node: str
    agent: str  # UP | DOWN | UNREACHABLE
    digest: Optional[str] = None
    matches: Optional[bool] = None  # None when the bay records no policy or the agent is not up
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.agent == UP and self.matches is not False

    def __str__(self) -> str:
        if self.agent != UP:
            return f"{self.node}: agent {self.agent} ({self.reason})"
        if self.matches is False:
            return f"{self.node}: policy drift ({(self.digest or 'none')[:12]})"
        return f"{self.node}: ok"


def bay_health(nodes, recorded_digest: Optional[str], *, bay_state_dir: str, ssh_user: str,
               ssh_key: str, connect_timeout: float = 10.0) -> List[NodeHealth]:
    """The health of every slave of `nodes`, in their order."""
    return asyncio.run(_health(nodes, recorded_digest, bay_state_dir, ssh_user, ssh_key, connect_timeout))


async def _health(nodes, recorded, bay_state_dir, ssh_user, ssh_key, connect_timeout) -> List[NodeHealth]:
    agent = CurlAgent(sudo=ssh_user != "root")
    slaves = [node for node in nodes if node.role == SLAVE]

    async def one(shell, node) -> NodeHealth:
        try:
            done = await shell.run(node.name, agent.show_command(), timeout=30)
        except NodeError as err:
            return NodeHealth(node.name, UNREACHABLE, reason=str(err))
        try:
            digest = agent.parse_digest(done.exit_status, done.stdout or "", done.stderr or "")
        except NodeError as err:
            return NodeHealth(node.name, DOWN, reason=str(err))
        return NodeHealth(node.name, UP, digest, matches=(digest == recorded) if recorded else None)

    try:
        shell = BayShell(nodes, bay_state_dir=bay_state_dir, ssh_user=ssh_user, ssh_key=ssh_key,
                         connect_timeout=connect_timeout)
    except NodeError as err:
        return [NodeHealth(node.name, UNREACHABLE, reason=str(err)) for node in slaves]
    async with shell:
        return list(await asyncio.gather(*(one(shell, node) for node in slaves)))


def summary(health: List[NodeHealth]) -> str:
    """One line: 'ok (2/2 agents up, policy as seeded)' or the nodes that are not."""
    if not health:
        return "no slaves"
    bad = [str(entry) for entry in health if not entry.ok]
    if not bad:
        return f"ok ({len(health)}/{len(health)} agents up, policy as seeded)"
    return "; ".join(bad)


def as_dict(health: List[NodeHealth]) -> Dict[str, dict]:
    return {entry.node: {"agent": entry.agent, "digest": entry.digest, "matches": entry.matches,
                         "reason": entry.reason} for entry in health}

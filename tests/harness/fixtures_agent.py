"""Fixtures of the node agent's functional tests: a real agent process and containers on veths.

`agent_lab` (one per test module): a bridge in its own namespace with namespaces on veths
(built with netlab), and a real `python -m bayctl.node.agent` with its own socket, state dir
and pin dir (/sys/fs/bpf/bagt-<random>). Everything carries the prefix "bagt" and is
removed at the end, pins included.
"""

import dataclasses
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

import pytest

from harness.paths import REPO
from harness.prereq import require, require_root, require_tools

EXAMPLES = os.path.join(REPO, "bayctl", "share", "policies")
DATAPATH_OBJECT = os.path.join(REPO, "bayctl", "node", "bpf", "bayctl_tc.bpf.o")
SUBNET = "10.251.0"
# Seconds a probe waits for its reply. Generous: an allowed probe answers in milliseconds, but
# this machine is shared; a denied one costs the whole wait (probes run side by side).
PROBE_TIMEOUT = 2.0
MEMBERS = 7          # the largest example (stars) places 6 group members and one external peer


@dataclasses.dataclass
class Role:
    """A member playing a group in one policy's scenario."""

    member: object       # bayctl.demolab.Member
    group: str
    tag: int

    def __str__(self):
        return f"{self.group}({self.member.name} {self.member.ip})"


class AgentLab:
    def __init__(self, agent, members):
        self.agent = agent
        self.members = members
        self._listening = set()
        self.listeners = []

    @property
    def client(self):
        return self.agent.client

    def place(self, policy, members=None):
        """Register members into `policy`'s groups (see demolab.group_members); the last is external."""
        from bayctl.demolab import group_members

        placed = group_members(policy)
        members = members or self.members
        if len(placed) > len(members):
            raise AssertionError(f"policy needs {len(placed)} members, the lab has {len(members)}")
        for member in self.members:
            self.client.remove_endpoint(member.ip)
        grouped = zip(members[:len(placed) - 1], placed[:-1])
        roles = [Role(member, group, tag) for member, (group, tag) in grouped]
        for role in roles:
            self.client.add_endpoint(role.member.ip, role.group, ifname="eth0", netns=role.member.netns)
        return roles + [Role(members[-1], "external", 0)]

    def listen(self, probes):
        from bayctl.demolab import start_listeners

        wanted = {p for p in probes if p.proto != "icmp"} - self._listening
        if wanted:
            for member in self.members:
                self.listeners += start_listeners(member.netns, wanted)
            self._listening |= wanted

    def disagreements(self, policy, roles, probes=None, pairs=None):
        """Measure every pair of roles with every probe; return (disagreements, {verdict: count}).

        The expected verdict of each probe comes from the policy model (Policy.allows)."""
        from bayctl.demolab import measure, policy_allows, probes_for

        probes = probes or probes_for(policy)
        self.listen(probes)
        pairs = pairs or [(a, b) for a in roles for b in roles if a is not b]
        jobs = [(a, b, p) for a, b in pairs for p in probes]
        reached = measure([(a.member.netns, b.member.ip, p) for a, b, p in jobs], timeout=PROBE_TIMEOUT)
        wrong, seen = [], {True: 0, False: 0}
        for (a, b, p), got in zip(jobs, reached):
            expected = policy_allows(policy, a.tag, b.tag, p)
            seen[expected] += 1
            if got != expected:
                wrong.append(f"{a} -> {b} {p}: {'passed' if got else 'dropped'}, "
                             f"policy says {'allow' if expected else 'deny'}")
        return wrong, seen


def example_policies():
    try:
        return sorted(name for name in os.listdir(EXAMPLES) if name.endswith(".yaml"))
    except FileNotFoundError:
        return []


def agent_prerequisites():
    require_root()
    require_tools("ip", "nsenter", "busybox", "tc")
    require(os.path.exists(DATAPATH_OBJECT), f"datapath not built ({DATAPATH_OBJECT}): pip install -e .")


def new_agent():
    """An AgentProcess (not started) with its own socket, state and pins; `cleanup_agent` removes them."""
    from bayctl.node.agent_process import AgentProcess

    run_dir = tempfile.mkdtemp(prefix="bagt-", dir="/run")   # short: a socket path has 108 bytes
    pin_dir = f"/sys/fs/bpf/bagt-{secrets.token_hex(4)}"
    return AgentProcess(os.path.join(run_dir, "sock", "agent.sock"), pin_dir, os.path.join(run_dir, "state"))


def cleanup_agent(agent):
    from bayctl.node.datapath import Datapath

    agent.close()
    Datapath(agent.pin_dir).unpin()
    shutil.rmtree(os.path.dirname(os.path.dirname(agent.socket_path)), ignore_errors=True)


@pytest.fixture(scope="module")
def agent_lab():
    agent_prerequisites()
    from bayctl.demolab import Member
    from harness.netlab import NetLab

    lab = NetLab("bagt")
    agent = new_agent()
    env = None
    try:
        switch = lab.netns("sw")
        lab.bridge("br", netns=switch)
        members = []
        for index in range(1, MEMBERS + 1):
            netns = lab.netns(f"c{index}")
            lab.veth(netns, f"{SUBNET}.{index}/24", peer_netns=switch, bridge="br")
            members.append(Member(f"c{index}", f"{SUBNET}.{index}", netns.path))
        agent.start()
        env = AgentLab(agent, members)
        yield env
    finally:
        if env is not None:
            for process in env.listeners:
                process.kill()
                process.wait()
        cleanup_agent(agent)
        lab.close()


@pytest.fixture
def bare_agent():
    """A started agent with no namespaces (API and lifecycle tests)."""
    agent_prerequisites()
    agent = new_agent()
    try:
        agent.start()
        yield agent
    finally:
        cleanup_agent(agent)


def bayctl(*args, socket=None, input=None):
    """Run the real `bayctl` CLI; returns CompletedProcess (text)."""
    argv = [sys.executable, "-m", "bayctl.cli.main", *args]
    if socket:
        argv += ["--socket", socket]
    return subprocess.run(argv, capture_output=True, text=True, input=input, timeout=120)

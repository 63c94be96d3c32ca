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

from bayctl.policy.model import EXTERNAL
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
class Member:
    """A container of the lab: a namespace on the lab's bridge (eth0 inside)."""

    name: str
    ip: str
    netns: str            # path, e.g. /run/netns/bagt-1a2b-c1
    ifname: str = "eth0"


@dataclasses.dataclass
class Role:
    """A member playing a group in one policy's scenario."""

    member: Member
    group: str
    tag: int

    def __str__(self):
        return f"{self.group}({self.member.name} {self.member.ip})"


def scenario_groups(policy, doubled=2):
    """[(group, tag)] to place one member each: every named group of `policy` by tag, the first
    `doubled` twice (so intra-group traffic is measured), and one `external` peer (tag 0)
    registered nowhere."""
    named = sorted(policy.named_groups.items(), key=lambda item: item[1])
    placed = []
    for index, (name, tag) in enumerate(named):
        placed += [(name, tag)] * (2 if index < doubled else 1)
    return placed + [(EXTERNAL, 0)]


def measure(jobs, timeout=PROBE_TIMEOUT):
    """[reached] for each (src netns, dst ip, (proto, port)) in `jobs`: verify's probes, side by side."""
    from bayctl.verify.probes import probe_all

    tasks = [(netns, ip, proto, port) for netns, ip, (proto, port) in jobs]
    return [reached for reached, _, _ in probe_all(tasks, timeout)]


class AgentLab:
    def __init__(self, agent, members):
        from bayctl.verify.probes import Responder

        self.agent = agent
        self.members = members
        self.responder = Responder()
        self._listening = set()

    @property
    def client(self):
        return self.agent.client

    def place(self, policy, members=None):
        """Register members into `policy`'s groups (see scenario_groups); the last is external."""
        placed = scenario_groups(policy)
        members = members or self.members
        if len(placed) > len(members):
            raise AssertionError(f"policy needs {len(placed)} members, the lab has {len(members)}")
        for member in self.members:
            self.client.remove_endpoint(member.ip)
        grouped = zip(members[:len(placed) - 1], placed[:-1])
        roles = [Role(member, group, tag) for member, (group, tag) in grouped]
        for role in roles:
            self.client.add_endpoint(role.member.ip, role.group, ifname="eth0", netns=role.member.netns)
        return roles + [Role(members[-1], EXTERNAL, 0)]

    def listen(self, services):
        """Every member answers on the TCP and UDP ports of `services` ((proto, port) pairs)."""
        from bayctl.verify.probes import ports_of

        wanted = {service for service in services if service[0] != "icmp"} - self._listening
        if wanted:
            for member in self.members:
                self.responder.listen(member.netns, ports_of(wanted))
            self._listening |= wanted

    def disagreements(self, policy, roles, services=None, pairs=None):
        """Measure every pair of roles with every service; return (disagreements, {verdict: count}).

        Services and expected verdicts are verify's (verify.matrix.expected_matrix: the policy
        model's Policy.allows); `services` overrides which (proto, port) are tried."""
        from bayctl.verify.matrix import expected_matrix

        groups = sorted({role.group for role in roles})
        matrix = expected_matrix(policy, groups, intra=True, services=services)
        expected = {(p.source, p.target, (p.proto, p.port)): p.expected for p in matrix}
        services = list(dict.fromkeys((p.proto, p.port) for p in matrix))
        self.listen(services)
        pairs = pairs or [(a, b) for a in roles for b in roles if a is not b]
        jobs = [(a, b, service) for a, b in pairs for service in services]
        reached = measure([(a.member.netns, b.member.ip, service) for a, b, service in jobs])
        wrong, seen = [], {True: 0, False: 0}
        for (a, b, service), got in zip(jobs, reached):
            allowed = expected[(a.group, b.group, service)]
            seen[allowed] += 1
            if got != allowed:
                wrong.append(f"{a} -> {b} {_service(service)}: {'passed' if got else 'dropped'}, "
                             f"policy says {'allow' if allowed else 'deny'}")
        return wrong, seen


def _service(service):
    proto, port = service
    return proto if port is None else f"{proto}/{port}"


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
            env.responder.close()
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

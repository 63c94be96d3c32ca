"""Measure a bay's connectivity matrix and compare it with its policy.

Over SSH (bayctl.verify.shell: the bay's key and known_hosts, slaves through the master) a
probe helper (bayctl.verify.node) runs on every slave and on the master:

1. each slave reports the policy its agent enforces; all must agree (that policy is the
   one verified, whatever file the bay was created with);
2. one probe endpoint per group is placed on the slaves, round robin (like the stars demo's
   probes), attached and registered with that slave's agent like any container; each
   slave's agent also learns the other slaves' probes (ip -> group), as it must for
   traffic between slaves; the master, in no group, plays `external`;
3. from every probe to every other group's probe: the policy's ports, one it does not
   name, and ICMP; the answers are compared with `Policy.allows`;
4. every endpoint, registration and link is removed again (also when anything fails or
   the user presses Ctrl-C: the helpers undo their work when their SSH session ends).
"""

import asyncio
import json
import time
from typing import Dict, List, Optional

from bayctl.errors import BayctlError, NodeError
from bayctl.model import master_of, slaves_of
from bayctl.policy import parse_policy
from bayctl.policy.model import EXTERNAL
from bayctl.verify.matrix import expected_matrix, listening_ports
from bayctl.verify.report import Report
from bayctl.verify.shell import BayShell

# The helper runs under the Python that has bayctl: on a node image that is a virtualenv
# (bayctl/share/elements/bayctl-node), named by the shebang of the `bayctl` script on PATH; else python3.
HELPER = ("sh -c 'py=$(sed -n \"1s/^#!\\(\\/[^ ]*\\)$/\\1/p\" \"$(command -v bayctl)\" 2>/dev/null); "
          "[ -x \"$py\" ] || py=python3; exec \"$py\" -m bayctl.verify.node'")
PROBE_TIMEOUT = 1.5


class VerifyError(BayctlError):
    """Verification could not run (not: the policy is violated; that is a report with mismatches)."""


class _Helper:
    """One probe helper process on one node, spoken to in JSON lines."""

    def __init__(self, node, process):
        self.node, self.process = node, process

    @classmethod
    async def start(cls, shell: BayShell, node, ssh_user: str):
        command = HELPER if ssh_user == "root" else f"sudo -n {HELPER}"
        return cls(node, await shell.start(node.name, command))

    async def ask(self, request: dict, timeout: float = 120) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise NodeError(f"{self.node.name}: probe helper gave no answer to {request['op']} "
                            f"in {timeout:g}s") from None
        if not line:
            err = (await self.process.stderr.read()).strip().splitlines()
            raise NodeError(f"{self.node.name}: probe helper ended: {err[-1] if err else 'no output'}")
        answer = json.loads(line)
        if "error" in answer:
            raise NodeError(f"{self.node.name}: {answer['error']}")
        return answer

    async def close(self):
        try:
            await self.ask({"op": "teardown"}, timeout=60)
        except (NodeError, OSError, ValueError):
            pass  # end of input makes the helper tear down as well
        self.process.stdin.write_eof()
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except (asyncio.TimeoutError, TimeoutError):
            self.process.close()


def verify_bay_state(state, nodes, *, ssh_user: str, ssh_key: str, status=None) -> Report:
    """Run verification on the bay described by `state` (a BayState) and its `nodes`."""
    return asyncio.run(_verify(state, nodes, ssh_user, ssh_key, status))


async def _verify(state, nodes, ssh_user, ssh_key, status) -> Report:
    started = time.monotonic()
    master, slaves = master_of(nodes), slaves_of(nodes)
    subnets = state.probe_subnets
    missing = [node.name for node in slaves if node.name not in subnets]
    if missing:
        raise VerifyError(f"bay {state.name}: no probe subnet known for {', '.join(missing)} "
                          "(the provider reports none)")

    def say(message, done=None, total=None):
        if status is not None:
            status.update(message, done, total)

    async with BayShell(nodes, bay_state_dir=state.directory, ssh_user=ssh_user, ssh_key=ssh_key) as shell:
        helpers: Dict[str, _Helper] = {}
        try:
            started_helpers = await asyncio.gather(*(_Helper.start(shell, node, ssh_user)
                                                     for node in [master, *slaves]))
            helpers = {helper.node.name: helper for helper in started_helpers}
            policy = await _enforced_policy([helpers[node.name] for node in slaves], state.policy_digest,
                                           state.name)
            say(f"slaves enforce policy {policy.digest[:12]}")

            groups = sorted(policy.named_groups)
            probes = expected_matrix(policy, [*groups, EXTERNAL], intra=True)
            ports = listening_ports(probes)
            placement = _place(groups, slaves)

            endpoints = await _setup(state.name, helpers, slaves, master, placement, subnets, ports)
            say(f"{len(placement)} probe endpoints ({len(groups)} groups) placed on {len(slaves)} slaves")
            await asyncio.gather(*(
                helpers[node.name].ask({"op": "register", "endpoints": [
                    {"ip": ep["ip"], "group": ep["group"]} for ep in endpoints.values()
                    if ep["node"] not in (node.name, master.name)]})
                for node in slaves))

            await _probe(helpers, endpoints, probes, say)
        finally:
            await asyncio.gather(*(helper.close() for helper in helpers.values()), return_exceptions=True)

    return Report(bay=state.name, policy_digest=policy.digest, groups=[*groups, EXTERNAL],
                  placement={name: {"node": ep["node"], "ip": ep["ip"]} for name, ep in endpoints.items()},
                  pairs=probes, seconds=round(time.monotonic() - started, 2))


async def _enforced_policy(slave_helpers: List[_Helper], recorded: Optional[str], bay: str):
    """The policy every slave enforces, once each agent answered and agrees with the bay's
    record: a slave that drifted (a policy applied behind bayctl's back) is a failure before
    any probe, since the matrix would otherwise be checked against the wrong policy."""
    hellos = await asyncio.gather(*(helper.ask({"op": "hello"}) for helper in slave_helpers))
    down = [f"{helper.node.name} ({hello['agent'].replace('agent not running at', 'no answer on')})"
            for helper, hello in zip(slave_helpers, hellos) if hello.get("agent")]
    if down:
        raise VerifyError(f"agent not running on {', '.join(down)}: `bayctl create mesosbay {bay}` "
                          "restarts it")
    digests = {helper.node.name: hello.get("digest") for helper, hello in zip(slave_helpers, hellos)}
    drifted = drift(digests, recorded)
    if drifted:
        raise VerifyError(f"policy drift: {drifted}; `bayctl policy apply FILE --bay {bay}` re-seeds")
    without = [name for name, digest in digests.items() if not digest]
    if without:
        raise VerifyError(f"no policy on {', '.join(without)}: seed one first (`bayctl policy apply FILE "
                          "--bay NAME`)")
    if len(set(digests.values())) > 1:
        listing = ", ".join(f"{name} {digest[:12]}" for name, digest in digests.items())
        raise VerifyError(f"the slaves enforce different policies ({listing}): re-seed with `bayctl policy "
                          "apply`")
    return parse_policy(hellos[0]["source"], source=f"{slave_helpers[0].node.name}:agent")


def drift(digests: Dict[str, Optional[str]], recorded: Optional[str]) -> str:
    """'' when every node holds the recorded digest (or none is recorded), else one clause per
    node that does not: 'slave1 enforces 515b0a2b35fd, the bay was seeded with 36748d47efc0'."""
    if not recorded:
        return ""
    return "; ".join(f"{name} enforces {(digest or 'no policy')[:12]}, the bay was seeded with "
                     f"{recorded[:12]}" for name, digest in digests.items() if digest != recorded)


def _place(groups, slaves) -> List[dict]:
    """Probe endpoints: one per group, round robin over the slaves (so with 2+ slaves most
    pairs cross the bay's network), and a second member of each group on the next slave,
    which the group's intra-group probes reach."""
    placed = []
    for index, group in enumerate(groups):
        placed.append({"name": group, "group": group, "node": slaves[index % len(slaves)]})
        placed.append({"name": peer_name(group), "group": group, "node": slaves[(index + 1) % len(slaves)]})
    return placed


def peer_name(group: str) -> str:
    return f"{group}.peer"


async def _setup(bay, helpers, slaves, master, placement, subnets, ports) -> Dict[str, dict]:
    async def one(node):
        mine = [{"name": ep["name"], "group": ep["group"]} for ep in placement if ep["node"] is node]
        if not mine:
            return []
        answer = await helpers[node.name].ask({
            "op": "setup", "subnet": subnets[node.name], "netns_prefix": f"bb-{bay}-{node.name}-p-",
            "ports": ports, "endpoints": mine})
        return [dict(ep, node=node.name) for ep in answer["endpoints"]]

    answers = await asyncio.gather(*(one(node) for node in slaves))
    external = await helpers[master.name].ask({"op": "setup-external", "ip": master.private_ip,
                                               "ports": ports})
    endpoints = {ep["name"]: ep for answer in answers for ep in answer}
    endpoints[EXTERNAL] = dict(external["endpoints"][0], node=master.name)
    return endpoints


async def _probe(helpers, endpoints, probes, say) -> None:
    per_node: Dict[str, list] = {}
    for index, probe in enumerate(probes):
        source = endpoints[probe.source]
        target = endpoints[peer_name(probe.target) if probe.target == probe.source else probe.target]
        probe.source_ip, probe.target_ip = source["ip"], target["ip"]
        per_node.setdefault(source["node"], []).append({
            "id": index, "from": source["name"], "ip": target["ip"], "proto": probe.proto,
            "port": probe.port})
    say(f"{len(probes)} probes between {len(endpoints)} endpoints")
    answers = await asyncio.gather(*(
        helpers[node].ask({"op": "probe", "timeout": PROBE_TIMEOUT, "tasks": tasks}, timeout=300)
        for node, tasks in per_node.items()))
    for answer in answers:
        for result in answer["results"]:
            probe = probes[result["id"]]
            probe.observed, probe.detail = bool(result["observed"]), result["detail"]
    mismatches = sum(1 for probe in probes if probe.mismatch)
    say(f"{len(probes) - mismatches} of {len(probes)} as the policy says")


def probe_subnets(container_subnets: Dict[str, str]) -> Dict[str, str]:
    """The part of each slave's container subnet verification uses: its top quarter, so
    probes never take an address a real container on that slave might be given."""
    import ipaddress

    subnets = {}
    for node, cidr in container_subnets.items():
        network = ipaddress.ip_network(cidr)
        quarter = list(network.subnets(new_prefix=min(32, network.prefixlen + 2)))[-1]
        subnets[node] = str(quarter)
    return subnets

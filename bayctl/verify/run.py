"""Measure a bay's connectivity matrix and compare it with its policy.

Over SSH (bayctl.remote: the bay's key and known_hosts, slaves through the master) a
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
from bayctl.remote import BayShell
from bayctl.verify.matrix import expected_matrix, listening_ports
from bayctl.verify.report import Report

# The helper runs under the Python that has bayctl: on a node image that is a virtualenv
# (bayctl/share/elements/bayctl-node), named by the shebang of the `bayctl` script on PATH; else python3.
HELPER = ("sh -c 'py=$(sed -n \"1s/^#!\\(\\/[^ ]*\\)$/\\1/p\" \"$(command -v bayctl)\" 2>/dev/null); "
          "[ -x \"$py\" ] || py=python3; exec \"$py\" -m bayctl.verify.node'")
PROBE_TIMEOUT = 1.5
LEGACY_PROBE_WORKERS = 128  # in flight per node before issue 16 item 4 (bench/verify_scale.py's "old")


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


def verify_bay_state(state, nodes, *, ssh_user: str, ssh_key: str, status=None,
                     legacy_plan: bool = False) -> Report:
    """Run verification on the bay described by `state` (a BayState) and its `nodes`.

    `legacy_plan`: the plan before issue 16 item 4 (a probe helper and every probe's
    registration on every slave, a node's endpoints attached one after the other, at most 128
    probes in flight per node), kept only so
    bench/verify_scale.py measures old and new side by side in one run."""
    return asyncio.run(_verify(state, nodes, ssh_user, ssh_key, status, legacy_plan))


async def _verify(state, nodes, ssh_user, ssh_key, status, legacy_plan=False) -> Report:
    started = time.monotonic()
    master, slaves = master_of(nodes), slaves_of(nodes)
    subnets = state.probe_subnets
    missing = [node.name for node in slaves if node.name not in subnets]
    if missing:
        raise VerifyError(f"bay {state.name}: no probe subnet known for {', '.join(missing)} "
                          "(the provider reports none)")
    phases = {}

    def say(message, done=None, total=None):
        if status is not None:
            status.update(message, done, total)

    def phase(name, since):
        phases[name] = round(time.monotonic() - since, 3)
        return time.monotonic()

    async with BayShell(nodes, bay_state_dir=state.directory, ssh_user=ssh_user, ssh_key=ssh_key) as shell:
        helpers: Dict[str, _Helper] = {}

        async def start_helpers(for_nodes):
            wanted = [node for node in for_nodes if node.name not in helpers]
            started_helpers = await asyncio.gather(*(_Helper.start(shell, node, ssh_user) for node in wanted))
            helpers.update({helper.node.name: helper for helper in started_helpers})

        try:
            # Every slave's agent is asked for its digest with one curl (no Python on the node), and
            # the first slave, which always holds a probe, for the policy's text: a probe helper
            # starts only where probes are placed, so a bay of many slaves and few groups pays for
            # its size one curl per slave.
            mark = time.monotonic()
            first = [master, slaves[0]] if not legacy_plan else [master, *slaves]
            await asyncio.gather(start_helpers(first), _check_digests(shell, slaves, ssh_user, state))
            policy = await _enforced_policy(helpers[slaves[0].name], state.policy_digest, state.name)
            say(f"slaves enforce policy {policy.digest[:12]}")
            mark = phase("policy", mark)

            groups = sorted(policy.named_groups)
            probes = expected_matrix(policy, [*groups, EXTERNAL], intra=True)
            ports = listening_ports(probes)
            placement = _place(groups, slaves)
            hosts = [node for node in slaves if any(ep["node"] is node for ep in placement)]
            await start_helpers(hosts)
            mark = phase("helpers", mark)

            endpoints = await _setup(state.name, helpers, hosts, master, placement, subnets, ports,
                                     workers=1 if legacy_plan else None)
            say(f"{len(placement)} probe endpoints ({len(groups)} groups) placed on {len(hosts)} of "
                f"{len(slaves)} slaves")
            mark = phase("setup", mark)
            # Each slave that holds probes learns the others' (ip -> group), as it must for traffic
            # between slaves; a slave without probes sees none of their traffic.
            await asyncio.gather(*(
                helpers[node.name].ask({"op": "register", "endpoints": [
                    {"ip": ep["ip"], "group": ep["group"]} for ep in endpoints.values()
                    if ep["node"] not in (node.name, master.name)]})
                for node in (slaves if legacy_plan else hosts)))
            mark = phase("register", mark)

            workers = LEGACY_PROBE_WORKERS if legacy_plan else None
            await _probe(helpers, endpoints, probes, say, workers=workers)
            mark = phase("probe", mark)
        finally:
            mark = time.monotonic()
            await asyncio.gather(*(helper.close() for helper in helpers.values()), return_exceptions=True)
            phase("teardown", mark)

    return Report(bay=state.name, policy_digest=policy.digest, groups=[*groups, EXTERNAL],
                  placement={name: {key: ep[key] for key in ("node", "ip", "link") if key in ep}
                             for name, ep in endpoints.items()},
                  pairs=probes, seconds=round(time.monotonic() - started, 2), phases=phases)


async def _check_digests(shell: BayShell, slaves, ssh_user: str, state) -> str:
    """The digest every slave's agent enforces, once each answered and all agree with the bay's
    record: a slave that drifted (a policy applied behind bayctl's back) is a failure before
    any probe, since the matrix would otherwise be checked against the wrong policy."""
    from bayctl.seed.remote import CurlAgent

    agent = CurlAgent(sudo=ssh_user != "root")

    async def one(node):
        try:
            done = await shell.run(node.name, agent.show_command(), timeout=60)
            return agent.parse_digest(done.exit_status, done.stdout or "", done.stderr or ""), None
        except NodeError as err:
            reason = str(err)
            if reason.startswith("agent not running (") and reason.endswith(")"):
                reason = reason[len("agent not running ("):-1]
            return None, reason

    answers = await asyncio.gather(*(one(node) for node in slaves))
    down = [f"{node.name} ({reason})" for node, (_, reason) in zip(slaves, answers) if reason]
    bay = state.name
    if down:
        raise VerifyError(f"agent not running on {', '.join(down)}: `bayctl create mesosbay {bay}` "
                          "restarts it")
    digests = {node.name: digest for node, (digest, _) in zip(slaves, answers)}
    drifted = drift(digests, state.policy_digest)
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
    return next(iter(digests.values()))


async def _enforced_policy(helper: _Helper, recorded: Optional[str], bay: str):
    """The policy text of the first slave (every slave's digest was checked before)."""
    hello = await helper.ask({"op": "hello"})
    if hello.get("agent"):
        raise VerifyError(f"agent not running on {helper.node.name} "
                          f"({hello['agent'].replace('agent not running at', 'no answer on')}): "
                          f"`bayctl create mesosbay {bay}` restarts it")
    if not hello.get("source"):
        raise VerifyError(f"no policy on {helper.node.name}: seed one first (`bayctl policy apply FILE "
                          "--bay NAME`)")
    policy = parse_policy(hello["source"], source=f"{helper.node.name}:agent")
    if recorded and policy.digest != recorded:  # changed between the two questions
        raise VerifyError(f"policy drift: {drift({helper.node.name: policy.digest}, recorded)}; "
                          f"`bayctl policy apply FILE --bay {bay}` re-seeds")
    return policy


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


async def _setup(bay, helpers, hosts, master, placement, subnets, ports, workers=None) -> Dict[str, dict]:
    async def one(node):
        mine = [{"name": ep["name"], "group": ep["group"]} for ep in placement if ep["node"] is node]
        if not mine:
            return []
        answer = await helpers[node.name].ask({
            "op": "setup", "subnet": subnets[node.name], "netns_prefix": f"bb-{bay}-{node.name}-p-",
            "ports": ports, "endpoints": mine, "workers": workers})
        return [dict(ep, node=node.name) for ep in answer["endpoints"]]

    answers = await asyncio.gather(*(one(node) for node in hosts))
    external = await helpers[master.name].ask({"op": "setup-external", "ip": master.private_ip,
                                               "ports": ports})
    endpoints = {ep["name"]: ep for answer in answers for ep in answer}
    endpoints[EXTERNAL] = dict(external["endpoints"][0], node=master.name)
    return endpoints


async def _probe(helpers, endpoints, probes, say, workers=None) -> None:
    """Every probe of a node in flight at once (`workers`: at most that many), all nodes at
    once: a denied probe costs its whole timeout, so each node's share costs about one."""
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
        helpers[node].ask({"op": "probe", "timeout": PROBE_TIMEOUT, "tasks": tasks, "workers": workers},
                          timeout=300)
        for node, tasks in per_node.items()))
    for answer in answers:
        for result in answer["results"]:
            probe = probes[result["id"]]
            probe.observed, probe.detail = bool(result["observed"]), result["detail"]
            probe.seconds = result.get("seconds")
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

#!/usr/bin/env python3
"""Seeding N real sshd nodes on loopback: bayctl vs a sequential `ssh` loop doing the same writes.

Every node is a real `/usr/sbin/sshd` on its own loopback address with its own host key, and
runs a real `bayctl node agent` (its own socket, bpffs pin dir and state dir) that its sshd
hands to each session (tests/harness/fixtures_sshd.py). Every side does the same writes and checks on
every node, over SSH: apply the policy unless the node holds its digest, read the digest back
and compare.

bayctl: `bayctl.seed.seed_policy` (asyncssh, one connection per node, `--concurrency` at a
time), with the commands of bayctl.seed.remote:
  cli   `bayctl node show -f json`; `bayctl node apply -` (policy on stdin); show again
  curl  ONE command: one curl doing `PUT /v1/policy` with `If-None-Match: "<digest>"` (the
        agent answers 412 and rewrites nothing if it holds that digest) then `GET /v1/policy`
The loops (OpenSSH `ssh`, node after node, as a shell script would; they use the known_hosts
bayctl recorded, with StrictHostKeyChecking=yes):
  ssh_loop                  one `ssh` per step: show (digest compared), apply, show, with
                            the mode's commands (curl: GET, PUT, GET)
  ssh_loop_same_command     (curl) one `ssh` per node running bayctl's own one command
Each side moves every node to a policy it does not hold yet, so each writes every node. Also
timed: bayctl re-seeding the same policy (every node `unchanged`, nothing rewritten).
Where the time goes: per phase the CPU of the nodes' sshd (with the sessions' shells and
commands), of the agents, and of the seeding side itself, per node.

Prints ONE JSON document (progress on stderr). Needs root (agents load the eBPF datapath).
Usage: python3 bench/seed.py [--sizes 10,50,200] [--modes cli,curl] [--concurrency 32]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)
from harness.fixtures_sshd import SshdBay  # noqa: E402  (tests/ holds the real-sshd node harness)

from bayctl.policy import parse_policy  # noqa: E402
from bayctl.seed import SEEDED, UNCHANGED, seed_policy  # noqa: E402
from bayctl.seed.remote import CurlAgent, remote_agent  # noqa: E402

EXAMPLES = os.path.join(HERE, "..", "bayctl", "share", "policies")
# Per mode: the policy bayctl seeds, then the one each loop seeds (each differs from what the
# nodes hold at that moment, so every side writes every node).
POLICIES = {"cli": ("web-db.yaml", "stars.yaml"),
            "curl": ("netgroups.yaml", "gist-numeric.yaml", "web-db.yaml")}


def log(message):
    print(f"bench/seed: {message}", file=sys.stderr, flush=True)


def read_example(name):
    with open(os.path.join(EXAMPLES, name)) as handle:
        return handle.read()


def rss_kb(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def pss_kb(pid):
    with open(f"/proc/{pid}/smaps_rollup") as handle:
        for line in handle:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def mem_available_kb():
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def cpu_busy_seconds():
    """Machine-wide busy CPU time (all cores), to see how CPU-bound a phase was."""
    with open("/proc/stat") as handle:
        fields = [int(value) for value in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def client_cpu_seconds():
    """CPU of the seeding side only: this process (bayctl's asyncssh) + reaped children (`ssh`)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def process_cpu_seconds(pid, children=False):
    """utime+stime of a process (or, children=True, of its reaped children: an sshd listener's
    per-connection processes, their shells and the commands those ran)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(") ", 1)[1].split()
    except OSError:
        return 0.0
    first = 13 if children else 11  # cutime, cstime / utime, stime (fields 16-17 / 14-15)
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def nodes_cpu_seconds(bay):
    sshd = sum(process_cpu_seconds(slave.sshd.pid, children=True) for slave in bay.slaves if slave.sshd)
    agents = sum(process_cpu_seconds(slave.agent.pid) for slave in bay.slaves if slave.agent)
    return sshd, agents


def timed(bay, function, *args):
    """Run one phase; returns (result, figures): wall time, machine-wide busy CPU, and CPU split
    into the seeding side, the nodes' sshd (+ sessions) and the agents, in total and per node."""
    busy, client, nodes, start = cpu_busy_seconds(), client_cpu_seconds(), nodes_cpu_seconds(bay), \
        time.monotonic()
    result = function(*args)
    seconds = time.monotonic() - start
    sshd, agents = (after - before for after, before in zip(nodes_cpu_seconds(bay), nodes))
    client = client_cpu_seconds() - client
    count = len(bay.slaves)
    return result, {
        "seconds": round(seconds, 3),
        "machine_cpu_seconds": round(cpu_busy_seconds() - busy, 2),
        "client_cpu_seconds": round(client, 2),
        "nodes_sshd_cpu_seconds": round(sshd, 2),
        "agents_cpu_seconds": round(agents, 2),
        # What the nodes alone cost, spread over this machine's cores: no seeder can beat it here.
        "nodes_cpu_floor_seconds": round((sshd + agents) / os.cpu_count(), 2),
        "per_node_ms": {"wall_share": round(1000 * seconds / count, 1),
                        "client_cpu": round(1000 * client / count, 1),
                        "sshd_and_session_cpu": round(1000 * sshd / count, 1),
                        "agent_cpu": round(1000 * agents / count, 1)},
    }


def bayctl_seed(bay, policy_text, mode, concurrency):
    results = seed_policy(bay.nodes(), policy_text, remote=mode, concurrency=concurrency,
                          raise_on_failure=False, **bay.seed_options())
    counts = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    failures = [str(result) for result in results if not result.ok][:5]
    return counts, failures


LOOP_KEX = "curve25519-sha256"


def ssh_loop(bay, policy_text, mode, same_command=False):
    """Node after node, the same writes and checks as bayctl: one `ssh` per step (show, apply
    if the digest differs, show), or with same_command one `ssh` running bayctl's command."""
    agent = remote_agent(mode)
    wanted = parse_policy(policy_text).digest
    base = ["ssh", "-F", "/dev/null", "-q", "-i", bay.key, "-p", str(bay.port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            # The key exchange asyncssh negotiates with this sshd; OpenSSH's own default
            # (sntrup761x25519) costs the client ~0.15 s more per connection here.
            "-o", f"KexAlgorithms={LOOP_KEX}",
            "-o", f"UserKnownHostsFile={os.path.join(bay.state_dir, 'known_hosts')}"]
    counts = {"seeded": 0, "unchanged": 0, "failed": 0}
    failures = []

    def run(target, command, stdin=None):
        done = subprocess.run(base + [target, command], input=stdin, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr

    for slave in bay.slaves:
        target = f"root@{slave.ip}"
        try:
            if same_command:
                applied, readback = agent.parse_seed(*run(target, agent.seed_command(wanted), policy_text))
                status = ("seeded" if applied else "unchanged") if readback == wanted else "failed"
                counts[status] += 1
                continue
            if agent.parse_digest(*run(target, agent.show_command())) == wanted:
                counts["unchanged"] += 1
                continue
            agent.check_applied(*run(target, agent.apply_command(), policy_text))
            if agent.parse_digest(*run(target, agent.show_command())) == wanted:
                counts["seeded"] += 1
            else:
                counts["failed"] += 1
        except Exception as exc:  # counted and shown, like bayctl's failures
            counts["failed"] += 1
            failures.append(f"{slave.name}: {exc}")
    return {k: v for k, v in counts.items() if v}, failures[:5]


def bpf_maps_kb(pin_dir):
    """Kernel memory (memlock) of the eBPF maps a node's agent pinned under pin_dir."""
    seen, total = set(), 0
    for folder, _, files in os.walk(pin_dir):
        for name in files:
            done = subprocess.run(["bpftool", "-j", "map", "show", "pinned", os.path.join(folder, name)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                continue  # a pinned program, not a map
            info = json.loads(done.stdout)
            if info.get("id") not in seen:
                seen.add(info.get("id"))
                total += info.get("bytes_memlock", 0)
    return total // 1024


def memory_figures(bay):
    agents = [slave.agent.pid for slave in bay.slaves if slave.agent]
    sshds = [slave.sshd.pid for slave in bay.slaves if slave.sshd]
    sample = bay.slaves[:3]
    bpf_kb = round(sum(bpf_maps_kb(slave.pin_dir) for slave in sample) / max(1, len(sample)))
    agent_pss = round(sum(pss_kb(pid) for pid in agents[:10]) / max(1, min(10, len(agents))))
    sshd_pss = round(sum(pss_kb(pid) for pid in sshds[:10]) / max(1, min(10, len(sshds))))
    return {
        "node_estimate_mb": round((agent_pss + sshd_pss + bpf_kb) / 1024, 1),
        "bpf_maps_kb_per_agent": bpf_kb,
        "agent_rss_kb_mean": round(sum(rss_kb(pid) for pid in agents) / max(1, len(agents))),
        "agent_pss_kb_mean": agent_pss,
        "sshd_rss_kb_mean": round(sum(rss_kb(pid) for pid in sshds) / max(1, len(sshds))),
        "sshd_pss_kb_mean": sshd_pss,
    }


# Memory a node costs (agent process + its pinned eBPF maps, sshd), until measured here.
ASSUMED_NODE_MB = 80
RESERVE_MB = 4096  # left to everything else on this (shared) machine


def bench_size(size, modes, concurrency, node_mb):
    available_before = mem_available_kb()
    needed_mb = size * node_mb + RESERVE_MB
    if needed_mb > available_before / 1024:
        return {"nodes": size, "skipped": f"needs ~{needed_mb} MB ({node_mb} MB per node + {RESERVE_MB} MB "
                                          f"reserve), {available_before // 1024} MB available"}
    log(f"starting {size} sshd nodes, each with its agent")
    start = time.monotonic()
    bay = SshdBay(size, ready_timeout=60 + size * 2)
    figures = {"nodes": size, "startup_seconds": round(time.monotonic() - start, 1)}
    try:
        figures["memory"] = memory_figures(bay)
        drop_mb = (available_before - mem_available_kb()) / 1024
        figures["memory"]["mem_available_drop_mb"] = round(drop_mb)
        figures["memory"]["mem_available_drop_per_node_mb"] = round(drop_mb / size, 1)
        for mode in modes:
            policies = [read_example(name) for name in POLICIES[mode]]
            log(f"N={size} mode={mode}: bayctl seed")
            (counts, failures), seed = timed(bay, bayctl_seed, bay, policies[0], mode, concurrency)
            (again, again_failures), reseed = timed(bay, bayctl_seed, bay, policies[0], mode, concurrency)
            log(f"N={size} mode={mode}: sequential ssh loop")
            (loop_counts, loop_failures), loop = timed(bay, ssh_loop, bay, policies[1], mode)
            result = {
                "bayctl": dict(seed, results=counts, failures=failures),
                "bayctl_reseed_unchanged": dict(reseed, results=again, failures=again_failures),
                "ssh_loop": dict(loop, results=loop_counts, failures=loop_failures),
                "speedup_vs_loop": round(loop["seconds"] / seed["seconds"], 2),
            }
            seeded = [counts, loop_counts]
            if isinstance(remote_agent(mode), CurlAgent):
                log(f"N={size} mode={mode}: sequential ssh loop, bayctl's one command per node")
                (same_counts, same_failures), same = timed(bay, ssh_loop, bay, policies[2], mode, True)
                result["ssh_loop_same_command"] = dict(same, results=same_counts, failures=same_failures)
                result["speedup_vs_loop_same_command"] = round(same["seconds"] / seed["seconds"], 2)
                seeded.append(same_counts)
            result["all_seeded_and_verified"] = all(c.get(SEEDED) == size for c in seeded)
            result["reseed_all_unchanged"] = again.get(UNCHANGED) == size
            figures[mode] = result
            log(f"N={size} mode={mode}: bayctl {seed['seconds']}s, loop {loop['seconds']}s")
    finally:
        bay.close()
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,50,200")
    parser.add_argument("--modes", default="cli,curl")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/seed.py: run as root (each node's agent loads the eBPF datapath)")
    sizes = [int(size) for size in args.sizes.split(",")]
    modes = [mode for mode in args.modes.split(",") if mode]
    runs, node_mb = [], ASSUMED_NODE_MB
    for size in sizes:
        runs.append(bench_size(size, modes, args.concurrency, node_mb))
        measured = runs[-1].get("memory", {}).get("node_estimate_mb")
        if measured:  # plan the next size with what a node really cost here (with a margin)
            node_mb = int(measured * 1.3) + 1
    print(json.dumps({
        "benchmark": "seed",
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()},
        "concurrency": args.concurrency,
        "remote_side": {
            "every_node": "real /usr/sbin/sshd (own host key, key auth) + real `bayctl node agent` "
                          "(own socket, bpffs pin dir, state dir), all on this machine",
            "cli": "bayctl node show -f json; bayctl node apply - (policy on stdin); "
                   "bayctl node show -f json",
            "curl": "one command: curl --unix-socket $BAYCTL_AGENT_SOCKET: PUT /v1/policy with "
                    "If-None-Match: \"<digest>\" (412: held already, nothing rewritten), then GET "
                    "/v1/policy (the read-back)",
        },
        "loop": f"OpenSSH ssh, node after node, KexAlgorithms={LOOP_KEX} (what asyncssh negotiates "
                "with this sshd), the bay's known_hosts enforced. ssh_loop: one ssh per step (show, "
                "apply, show; curl: GET, PUT, GET); ssh_loop_same_command: one ssh per node running "
                "bayctl's own curl command",
        "figures": "seconds: wall time; machine_cpu_seconds: busy CPU of the whole (shared) machine "
                   "meanwhile, every node's sshd/agent/commands included; client_cpu_seconds: the "
                   "seeding side alone (bayctl's process, or the loop's ssh clients): what a "
                   "controller would spend when the nodes are other machines; nodes_sshd_cpu_seconds: "
                   "the nodes' sshd per-connection processes with their sessions' shells and commands; "
                   "agents_cpu_seconds: the agents; per_node_ms: the same per node",
        "target": "200 nodes seeded and verified < 10 s, >= 10x the sequential loop",
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""bayctl-cni ADD and DEL latency, this tree vs an earlier one, side by side in one run.

One JSON document on stdout (progress on stderr). Run as root (the plugin makes links and
namespaces; the agent loads the eBPF datapath).

Each variant is the plugin as a runtime runs it (a fresh Python process per call, the network
config on stdin, CNI_* in the environment) of one source tree: `after` is this checkout,
`before` is --before (default: where this branch left main), exported with `git archive`.
Both talk to one agent of this tree, on one network config, and are run alternately, so
the machine's load falls on both alike; the load average is in the output.

Figures per variant:
- import: the plugin module's import alone, in a fresh interpreter (median of --imports runs),
  and the modules it loads;
- alone: ADD then DEL of one container at a time (--alone of them): p50/p99;
- at_once: --containers ADDs started at once (a barrier), then as many DELs at once: p50/p99/max,
  and the CPU seconds the agent spent meanwhile (the serial part, when the agent runs the calls);
- phases (this tree only, in-process, one container at a time): where one ADD and one DEL spend
  their time (config parse, link mode, agent calls, IPAM, links, registration).

Usage: python3 bench/cni_latency.py [--containers 50] [--alone 10] [--before REV]
"""

import argparse
import concurrent.futures
import functools
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)

ROOT = benchpath.ROOT
POLICY = os.path.join(ROOT, "bayctl", "share", "policies", "web-db.yaml")
PHASE_RUNS = 5
RUN_PLUGIN = "import sys; from bayctl.node.cni import main; sys.exit(main())"
IMPORT_PLUGIN = ("import sys, time; t = time.perf_counter(); import bayctl.node.cni; "
                 "print(time.perf_counter() - t, len(sys.modules), "
                 "' '.join(m for m in ('pyroute2', 'yaml', 'bayctl.policy.compiler', 'http.client', "
                 "'openstack', 'asyncio') if m in sys.modules))")


def log(message):
    print(f"bench/cni_latency: {message}", file=sys.stderr, flush=True)


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(samples):
    return {"n": len(samples), "p50_ms": round(1000 * percentile(samples, 0.5), 1),
            "p99_ms": round(1000 * percentile(samples, 0.99), 1), "max_ms": round(1000 * max(samples), 1)}


def export_tree(rev, into):
    os.makedirs(into)
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "bayctl"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return into


class Variant:
    def __init__(self, name, tree, config, tag):
        self.name, self.tree, self.config, self.tag = name, tree, config, tag

    def env(self, command, container, netns):
        # The tree first on sys.path, as an installed plugin's own package would be.
        return {"PATH": os.environ["PATH"], "PYTHONPATH": self.tree, "CNI_COMMAND": command,
                "CNI_CONTAINERID": container, "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_ARGS": "",
                "CNI_PATH": "/usr/lib/cni"}

    def call(self, command, index, gate=None):
        container = f"{self.tag}-{self.name}-{index}"
        env = self.env(command, container, f"/run/netns/bcnl-{self.tag}-{index}")
        if gate is not None:
            gate.wait()
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-c", RUN_PLUGIN], input=json.dumps(self.config).encode(),
                              capture_output=True, env=env, cwd="/")
        seconds = time.monotonic() - start
        if done.returncode != 0:
            raise RuntimeError(f"{self.name} {command} {index}: {done.stdout.decode()[:300]} "
                               f"{done.stderr.decode()[-600:]}")
        return seconds

    def import_cost(self, runs):
        seconds, loaded, heavy = [], 0, ""
        for _ in range(runs):
            env = {"PATH": os.environ["PATH"], "PYTHONPATH": self.tree}
            done = subprocess.run([sys.executable, "-c", IMPORT_PLUGIN], capture_output=True, text=True,
                                  env=env, cwd="/", check=True)
            fields = done.stdout.split(maxsplit=2)
            seconds.append(float(fields[0]))
            loaded, heavy = int(fields[1]), (fields[2].strip() if len(fields) > 2 else "")
        return {"p50_ms": round(1000 * percentile(seconds, 0.5), 1), "modules_loaded": loaded,
                "heavy_modules_loaded": heavy.split()}


def at_once(variant, command, count):
    gate = threading.Barrier(count)
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda i: variant.call(command, i, gate), range(count)))


# -- phases: one ADD and one DEL of this tree, in-process ------------------------------------------

class Phases:
    """Wall time per phase, by wrapping the functions each phase is made of."""

    def __init__(self):
        self.seconds = {}
        self.undo = []

    def wrap(self, owner, attribute, phase):
        original = getattr(owner, attribute, None)
        if original is None:
            return

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

        setattr(owner, attribute, timed)
        self.undo.append((owner, attribute, original))

    def restore(self):
        for owner, attribute, original in reversed(self.undo):
            setattr(owner, attribute, original)


def phases(config, tag, runs):
    from bayctl.node import attach, cni, links
    from bayctl.node.client import AgentClient
    from bayctl.node.ipam import Ipam

    per_run = {"ADD": [], "DEL": []}
    for index in range(runs):
        netns = f"/run/netns/bcnl-{tag}-{index}"
        for command in ("ADD", "DEL"):
            timer = Phases()
            timer.wrap(cni, "Invocation", "config parse")
            timer.wrap(attach, "link_mode", "link mode (ipvlan probe)")
            for method in ("show_policy", "health", "endpoints"):
                timer.wrap(AgentClient, method, "agent: group check")
            timer.wrap(AgentClient, "add_endpoint", "agent: registration (attach program)")
            timer.wrap(AgentClient, "remove_endpoint", "agent: forget endpoint")
            for method in ("create_pool", "allocate", "addresses", "owned", "pools", "release_owner"):
                timer.wrap(Ipam, method, "IPAM (locked state file)")
            for function in ("create_network_link", "create_endpoint_link", "move_and_configure",
                             "delete_in_netns", "delete_endpoint_link"):
                timer.wrap(links, function, f"links: {function}")
            timer.wrap(cni, "_host_mac", "links: _host_mac")
            env = {"CNI_COMMAND": command, "CNI_CONTAINERID": f"{tag}-phases-{index}", "CNI_NETNS": netns,
                   "CNI_IFNAME": "eth0", "CNI_ARGS": "", "CNI_PATH": "/usr/lib/cni"}
            start = time.perf_counter()
            try:
                document, status = cni.run(env, json.dumps(config))
            finally:
                timer.restore()
            total = time.perf_counter() - start
            if status != 0:
                raise RuntimeError(f"phases {command}: {document}")
            timer.seconds["total (in-process)"] = total
            per_run[command].append(timer.seconds)
    out = {}
    for command, runs_seen in per_run.items():
        names = sorted({name for seen in runs_seen for name in seen})
        out[command] = {name: round(1000 * percentile([seen.get(name, 0.0) for seen in runs_seen], 0.5), 1)
                        for name in names}
    return out


# -- the run ---------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--alone", type=int, default=10)
    parser.add_argument("--imports", type=int, default=9)
    parser.add_argument("--before", default=None, help="git revision of the `before` plugin "
                        "(default: git merge-base HEAD main)")
    parser.add_argument("--only", choices=("before", "after"), help="run one variant only")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/cni_latency.py: run as root")
    from scale import cpu_seconds, start_agent, stop_agent  # bench/scale.py's, with its own pins

    before_rev = args.before or subprocess.run(["git", "-C", ROOT, "merge-base", "HEAD", "main"], check=True,
                                               capture_output=True, text=True).stdout.strip()
    after_rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], check=True, capture_output=True,
                               text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "bayctl"], capture_output=True,
                                text=True).stdout.strip())
    workdir = tempfile.mkdtemp(prefix="bcnl-", dir="/work" if os.path.isdir("/work") else None)
    tag = secrets.token_hex(2)
    count = max(args.containers, args.alone, PHASE_RUNS)
    namespaces = [f"bcnl-{tag}-{i}" for i in range(count)]
    config = {"cniVersion": "1.0.0", "name": f"bcnl-{tag}", "type": "bayctl-cni", "stateDir": "",
              "linkPrefix": "bcnl", "group": "web", "ipam": {"type": "bayctl", "subnet": "10.238.0.0/24"}}
    report = {"benchmark": "cni_latency", "cpus": os.cpu_count(), "containers_at_once": args.containers,
              "before": before_rev, "after": after_rev + (" (+ uncommitted changes)" if dirty else ""),
              "load_average_at_start": os.getloadavg()}
    agent = None
    try:
        agent = start_agent(workdir, "agent")
        agent.client.apply_policy(open(POLICY).read(), source=POLICY)
        config.update(agentSocket=agent.socket_path, stateDir=os.path.join(workdir, "cni-state"))
        for name in namespaces:
            subprocess.run(["ip", "netns", "add", name], check=True)
        variants = []
        if args.only != "after":
            before_tree = export_tree(before_rev, os.path.join(workdir, "before"))
            variants.append(Variant("before", before_tree, config, tag))
        if args.only != "before":
            variants.append(Variant("after", ROOT, config, tag))
        results = {v.name: {"import": v.import_cost(args.imports), "alone": {"ADD": [], "DEL": []}}
                   for v in variants}
        log(f"import: {json.dumps({name: r['import'] for name, r in results.items()})}")
        # Alternate the variants call by call, so a burst of load elsewhere hits both.
        for index in range(args.alone):
            for variant in variants:
                for command in ("ADD", "DEL"):
                    results[variant.name]["alone"][command].append(variant.call(command, index))
        for variant in variants:
            seen = results[variant.name]["alone"]
            results[variant.name]["alone"] = {command: summary(samples) for command, samples in seen.items()}
            log(f"{variant.name} alone: {json.dumps(results[variant.name]['alone'])}")
        for variant in variants:
            for command in ("ADD", "DEL"):
                # The agent's CPU during the burst: the serial part when it runs the calls.
                cpu_before = cpu_seconds(agent.process.pid)
                figures = summary(at_once(variant, command, args.containers))
                figures["agent_cpu_s"] = round(cpu_seconds(agent.process.pid) - cpu_before, 2)
                results[variant.name].setdefault("at_once", {})[command] = figures
                log(f"{variant.name} {args.containers} at once {command}: "
                    f"{json.dumps(results[variant.name]['at_once'][command])}")
        if args.only != "before":
            results["after"]["phases_ms"] = phases(config, tag, PHASE_RUNS)
        report.update(results)
        if len(variants) == 2:
            report["ratio_before_vs_after"] = {
                f"{kind}_{command}_p50": round(results["before"][kind][command]["p50_ms"]
                                               / results["after"][kind][command]["p50_ms"], 1)
                for kind in ("alone", "at_once") for command in ("ADD", "DEL")}
            report["ratio_before_vs_after"]["import_p50"] = round(
                results["before"]["import"]["p50_ms"] / results["after"]["import"]["p50_ms"], 1)
        report["load_average_at_end"] = os.getloadavg()
    finally:
        for name in namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        key = hashlib.sha256(config["name"].encode()).hexdigest()
        for link in (f"bcnln{key[:8]}", f"bcnlN{key[:8]}"):
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        if agent is not None:
            stop_agent(agent)
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

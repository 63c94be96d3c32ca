#!/usr/bin/env python3
"""Start and remove N containers on a bayctl network vs on Docker's own bridge network.

One private dockerd (vfs, no iptables), one node agent with the web-db policy, the bayctl
Docker plugin; a bayctl network (group web) and a Docker bridge network side by side. The
containers are started one at a time, alternating between the two networks (so drift of this
noisy machine hits both alike), then removed the same way. Prints one JSON document:
per-network totals and medians, and bayctl/bridge ratios (target: within 1.5x).

Run as root: `python3 bench/plugin.py [--containers 50]`.
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)
from harness.fixtures_docker import IMAGE, Agent, Dockerd, Plugin  # noqa: E402  (the tests' own launchers)


def timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def summary(samples):
    return {"total_s": round(sum(samples), 3), "median_s": round(statistics.median(samples), 4),
            "max_s": round(max(samples), 4), "samples": len(samples)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--containers", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print(json.dumps({"error": "run as root (dockerd, network namespaces, bpffs)"}))
        return 1

    import secrets
    import shutil
    import tempfile

    root = tempfile.mkdtemp(prefix="bplg-bench-", dir="/var/tmp")
    tag = secrets.token_hex(3)
    daemon, agent, plugin = Dockerd(os.path.join(root, "docker")), Agent(root, tag), None
    os.makedirs(daemon.root)
    try:
        agent.start()
        agent.apply(os.path.join(HERE, "..", "bayctl", "share", "policies", "web-db.yaml"))
        daemon.start()
        daemon.import_busybox_image()
        plugin = Plugin(root, tag, agent)
        plugin.start()
        daemon.docker("network", "create", "-d", plugin.name, "--ipam-driver", plugin.name,
                      "--subnet", "10.250.0.0/24", "-o", "bayctl.group=web", "bplg-bench-bayctl")
        daemon.docker("network", "create", "-d", "bridge", "--subnet", "10.251.0.0/24",
                      "-o", "com.docker.network.bridge.name=bplgbenchbr", "bplg-bench-bridge")
        networks = {"bridge": "bplg-bench-bridge", "bayctl": "bplg-bench-bayctl"}
        start = {k: [] for k in networks}
        remove = {k: [] for k in networks}

        def run(kind, i):
            daemon.docker("run", "-d", "--name", f"bplg-bench-{kind}-{i}", "--network", networks[kind], IMAGE,
                          "sleep", "3600")

        def rm(kind, i):
            daemon.docker("rm", "-f", f"bplg-bench-{kind}-{i}")

        # one warm-up each (first container pays for image layer setup)
        for kind in networks:
            run(kind, "warm")
            rm(kind, "warm")
        for i in range(args.containers):
            order = ("bridge", "bayctl") if i % 2 == 0 else ("bayctl", "bridge")
            for kind in order:
                start[kind].append(timed(run, kind, i))
        endpoints_while_running = len(agent.client().endpoints())
        for i in range(args.containers):
            order = ("bayctl", "bridge") if i % 2 == 0 else ("bridge", "bayctl")
            for kind in order:
                remove[kind].append(timed(rm, kind, i))
        result = {
            "bench": "plugin",
            "containers": args.containers,
            "link_mode": _link_mode(plugin),
            "agent_endpoints_while_running": endpoints_while_running,
            "agent_endpoints_after_removal": len(agent.client().endpoints()),
            "start": {k: summary(v) for k, v in start.items()},
            "remove": {k: summary(v) for k, v in remove.items()},
        }
        total = {k: sum(start[k]) + sum(remove[k]) for k in networks}
        result["ratio_bayctl_over_bridge"] = {
            "start": round(sum(start["bayctl"]) / sum(start["bridge"]), 3),
            "remove": round(sum(remove["bayctl"]) / sum(remove["bridge"]), 3),
            "start_and_remove": round(total["bayctl"] / total["bridge"], 3),
        }
        result["target_ratio"] = 1.5
        result["within_target"] = result["ratio_bayctl_over_bridge"]["start_and_remove"] <= 1.5
        print(json.dumps(result, indent=2))
        return 0
    finally:
        if daemon.process is not None:
            leftovers = daemon.out("ps", "-aq", check=False).split()
            if leftovers:
                daemon.docker("rm", "-f", *leftovers, check=False)
            for net in ("bplg-bench-bayctl", "bplg-bench-bridge"):
                daemon.docker("network", "rm", net, check=False)
        if plugin:
            plugin.stop()
        daemon.stop()
        agent.stop()
        shutil.rmtree(root, ignore_errors=True)


def _link_mode(plugin):
    networks = plugin.state()["networks"]
    return sorted({n["mode"] for n in networks.values()})


if __name__ == "__main__":
    sys.exit(main())

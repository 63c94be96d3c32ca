#!/usr/bin/env python3
"""Applying a policy through the node agent vs swapping the same entries into the datapath directly.

For policies compiling to about 1k, 10k and 100k entries: the wall-clock time of
`PUT /v1/policy` on a real agent (HTTP over its unix socket, parse, validate, compile, the
atomic datapath swap, the fsync'd state write; target at 100k: under 1 s, issue 16), the
parts measured on their own in this process (parse; pack_policy, the agent's compiler;
compile_policy, the ctypes pairs it replaced, side by side), and Datapath.replace_policy of
the packed entries (the kernel part). The ratio agent/datapath is what the agent's
user-space work costs on top of the swap. Prints one JSON document. Run as root.
"""

import argparse
import json
import math
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time

import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)

from bayctl.node.agent_process import AgentProcess  # noqa: E402
from bayctl.node.datapath import Datapath  # noqa: E402
from bayctl.policy import compile_policy, pack_policy, parse_policy  # noqa: E402

SIZES = (1_000, 10_000, 100_000)
GROUPS = 20


def policy_text(entries, shared_ports=True):
    """A policy of GROUPS groups with a rule per ordered pair, each naming enough single
    (odd, so never merged into prefixes) TCP ports to compile to about `entries` entries.
    shared_ports: every rule names the same ports (the compiler packs that list once), else
    each rule's list is shifted by its index (every rule's ports compiled on their own)."""
    pairs = [(a, b) for a in range(1, GROUPS + 1) for b in range(1, GROUPS + 1) if a != b]
    ports = max(1, math.ceil(entries / len(pairs)))
    lines = ["apiVersion: bayctl/v1", "kind: GroupPolicy", "groups:"]
    lines += [f"  g{n}: {n}" for n in range(1, GROUPS + 1)]
    lines += ["intraGroup: deny", "rules:"]
    for index, (a, b) in enumerate(pairs):
        shift = 0 if shared_ports else 2 * index
        port_list = ", ".join(f"tcp/{2 * k + 1 + shift}" for k in range(ports))
        lines.append(f"  - {{from: g{a}, to: g{b}, ports: [{port_list}]}}")
    return "\n".join(lines) + "\n"


def timed(func, *args, **kwargs):
    start = time.perf_counter()
    result = func(*args, **kwargs)
    return (time.perf_counter() - start) * 1000, result


def median(samples):
    return round(statistics.median(samples), 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/agent_apply.py: run as root (loads the eBPF datapath)")

    run_dir = tempfile.mkdtemp(prefix="bagt-bench-", dir="/run")
    pin_dir = f"/sys/fs/bpf/bagt-bench-{secrets.token_hex(3)}"
    agent = AgentProcess(os.path.join(run_dir, "agent.sock"), pin_dir, os.path.join(run_dir, "state"))
    results = []
    try:
        agent.start()
        client = agent.client
        datapath = Datapath(pin_dir)
        for size, shared_ports in [(size, True) for size in SIZES] + [(SIZES[-1], False)]:
            text = policy_text(size, shared_ports)
            parse_ms, policy = timed(parse_policy, text)
            pack_ms, packed = timed(pack_policy, policy)
            compile_ms, entries = timed(compile_policy, policy)
            agent_ms, swap_ms = [], []
            for _ in range(args.repeat):
                agent_ms.append(timed(client.apply_policy, text)[0])
                swap_ms.append(timed(datapath.replace_policy, packed)[0])
            results.append({
                "target_entries": size,
                "rules_share_one_port_list": shared_ports,
                "entries": len(entries),
                "yaml_bytes": len(text.encode()),
                "agent_put_ms": median(agent_ms),
                "agent_put_samples_ms": [round(x, 2) for x in agent_ms],
                "parse_ms": round(parse_ms, 2),
                "pack_ms": round(pack_ms, 2),
                "compile_policy_ms": round(compile_ms, 2),
                "ratio_pack_vs_compile_policy": round(pack_ms / compile_ms, 3),
                "datapath_replace_ms": median(swap_ms),
                "ratio_agent_vs_datapath": round(median(agent_ms) / median(swap_ms), 2),
                "share_parse_pack": round((parse_ms + pack_ms) / median(agent_ms), 3),
                "under_1s": median(agent_ms) < 1000,
            })
    finally:
        agent.close()
        Datapath(pin_dir).unpin()
        shutil.rmtree(run_dir, ignore_errors=True)
    print(json.dumps({"benchmark": "agent_apply", "repeat": args.repeat, "groups": GROUPS,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()

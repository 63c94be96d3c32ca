#!/usr/bin/env python3
"""Policy update latency: Datapath.replace_policy for 1k, 10k and 100k entries (target: 100k < 200 ms).

On a loaded datapath (object loaded, maps pinned under a scratch bpffs directory). Each size is
replaced --repeat times; the figures are wall-clock milliseconds of the whole call (validation,
packing, a fresh inner LPM trie, the batch update, the swap into slot 0), with the packing
part and the kernel part also timed on their own. For comparison, 100k entries are also
written one BPF_MAP_UPDATE_ELEM at a time (the fallback where a kernel cannot batch-update an
LPM trie), and batch-written into a plain hash map as a yardstick of the machine's current speed.
The swap itself includes the kernel waiting for running programs to leave the old policy
(synchronize_rcu in the BPF_MAP_UPDATE_ELEM of a map-of-maps). Entries are generated with
bayctl.policy.layout (a mix of port, port-prefix, protocol and group-pair prefixes).
Prints one JSON document. Run as root.
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)

from bayctl.node import datapath as datapath_module  # noqa: E402
from bayctl.node import libbpf  # noqa: E402
from bayctl.node.datapath import Datapath  # noqa: E402
from bayctl.policy import layout  # noqa: E402

SIZES = (1_000, 10_000, 100_000)
TARGET_MS_100K = 200


def entries(count):
    """`count` distinct entries over many group pairs, like a compiled policy of many rules."""
    out = []
    for i in range(count):
        src, dst = 1 + i % 997, 1 + (i // 997) % 997
        kind = i % 4
        if kind == 0:
            key = layout.PolicyKey.make(layout.PREFIX_GROUPS_ONLY, src, dst + 1000, 0, 0)
        elif kind == 1:
            key = layout.PolicyKey.make(layout.PREFIX_PROTO_ONLY, src, dst + 2000, layout.PROTO_UDP, 0)
        elif kind == 2:
            key = layout.PolicyKey.make(layout.PREFIX_PROTO_ONLY + 12, src, dst + 3000, layout.PROTO_TCP,
                                        (i % 4096) << 4)
        else:
            key = layout.PolicyKey.make(layout.POLICY_FULL_PREFIX, src, dst + 4000, layout.PROTO_TCP,
                                        1 + i % 65000)
        out.append((key, layout.PolicyValue(rule_id=i + 1)))
    return out


def timed(func, *args):
    start = time.perf_counter()
    result = func(*args)
    return (time.perf_counter() - start) * 1000, result


def summary(samples):
    return {"median_ms": round(statistics.median(samples), 2), "min_ms": round(min(samples), 2),
            "max_ms": round(max(samples), 2), "samples": len(samples)}


def kernel_fill_ms(key_array, value_array, count, batch):
    fd = libbpf.map_create(libbpf.MAP_TYPE_LPM_TRIE, "bench", ctypes.sizeof(layout.PolicyKey),
                           ctypes.sizeof(layout.PolicyValue), layout.MAX_POLICY, libbpf.BPF_F_NO_PREALLOC)
    try:
        saved = datapath_module._batch_supported
        datapath_module._batch_supported = None if batch else False
        ms, _ = timed(datapath_module._fill, fd, key_array, value_array, count)
        datapath_module._batch_supported = saved
        return ms
    finally:
        os.close(fd)


def hash_batch_fill_ms(key_array, value_array, count):
    """The same keys batch-written into a plain preallocated HASH map: a yardstick of this
    machine's speed right now (PLATFORM.md measured ~37 ms for 100k on a quiet machine)."""
    fd = libbpf.map_create(1, "bench_hash", ctypes.sizeof(layout.PolicyKey),
                           ctypes.sizeof(layout.PolicyValue), layout.MAX_POLICY)
    try:
        ms, _ = timed(libbpf.map_update_batch, fd, key_array, value_array, count)
        return ms
    finally:
        os.close(fd)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/policy_update.py: run as root (bpf maps)")

    dp = Datapath(pin_dir=f"/sys/fs/bpf/bdpu-{os.getpid()}")
    dp.load()
    results = {}
    try:
        for size in SIZES:
            policy = entries(size)
            total, packing, kernel = [], [], []
            for _ in range(args.repeat):
                ms, _ = timed(dp.replace_policy, policy)
                total.append(ms)
                ms, (keys, values, count) = timed(datapath_module._policy_arrays, policy)
                packing.append(ms)
                kernel.append(kernel_fill_ms(keys, values, count, batch=True))
            results[str(size)] = {"replace_policy": summary(total), "packing": summary(packing),
                                  "kernel_batch_fill": summary(kernel)}
        keys, values, count = datapath_module._policy_arrays(entries(SIZES[-1]))
        per_element = kernel_fill_ms(keys, values, count, batch=False)
        hash_fill = hash_batch_fill_ms(keys, values, count)
        assert dp.policy_loaded()
    finally:
        dp.unpin()

    largest = results[str(SIZES[-1])]["replace_policy"]["median_ms"]
    largest_fill = results[str(SIZES[-1])]["kernel_batch_fill"]["median_ms"]
    print(json.dumps({
        "benchmark": "policy_update",
        "lpm_batch_update_supported": datapath_module._batch_supported,
        "entries": results,
        "per_element_fill_100k_ms": round(per_element, 2),
        "hash_map_batch_fill_100k_ms": round(hash_fill, 2),
        "batch_speedup_100k": round(per_element / largest_fill, 2),
        # Where the 100k time goes: the kernel inserting into the LPM trie vs our packing.
        "kernel_fill_share_100k": round(largest_fill / largest, 3),
        "packing_share_100k": round(results[str(SIZES[-1])]["packing"]["median_ms"] / largest, 3),
        # LPM trie insertion relative to a plain hash map's, same keys, same run.
        "lpm_over_hash_fill_100k": round(largest_fill / hash_fill, 2),
        "target_100k_ms": TARGET_MS_100K,
        "median_100k_over_target": round(largest / TARGET_MS_100K, 3),
        "meets_target": largest < TARGET_MS_100K,
        "load_average": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    main()

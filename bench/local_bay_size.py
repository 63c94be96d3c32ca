"""How many slaves a local bay holds on this machine: per size, create, health (what `show`
adds) and verify, and the memory of the bay's processes (sshd + agent per slave).

Prints ONE JSON document, all figures from this run; the local provider's cap
(bayctl.spec.MAX_LOCAL_SLAVES) is chosen from it. Needs root.

    python3 bench/local_bay_size.py [--sizes 2,8,16]
"""

import argparse
import json
import os
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)

WEB_DB = os.path.join(ROOT, "bayctl", "share", "policies", "web-db.yaml")


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, round(time.perf_counter() - started, 3)


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2,8,16")
    args = parser.parse_args()
    os.environ["BAYCTL_STATE_DIR"] = tempfile.mkdtemp(prefix="bb-bench-")
    from bayctl import api, spec
    from bayctl.providers import local_net

    sizes = [int(word) for word in args.sizes.split(",")]
    spec.MAX_LOCAL_SLAVES = max(sizes)  # measuring beyond the cap is the point

    runs = []
    for size in sizes:
        name = f"bbsize{size}"
        figures = {"slaves": size, "cpus": os.cpu_count()}
        try:
            bay, figures["create_s"] = timed(api.create_bay, name, provider="local", slaves=size,
                                             policy=WEB_DB)
            pids = [pid for ns in local_net.bay_namespaces(name)
                    for pid in local_net.processes_in(os.path.join(local_net.NETNS_DIR, ns))]
            figures["processes"] = len(pids)
            figures["rss_mib"] = round(rss_kib(pids) / 1024, 1)
            figures["rss_mib_per_slave"] = round(figures["rss_mib"] / size, 1)
            _, figures["health_s"] = timed(bay.health)
            report, figures["verify_s"] = timed(bay.verify)
            figures["verify_mismatches"] = len(report.mismatches)
        except Exception as err:  # the size that fails is the answer
            figures["error"] = str(err)
        finally:
            _, figures["delete_s"] = timed(api.delete_bay, name)
        runs.append(figures)
    with open("/proc/meminfo") as handle:
        available = next(int(line.split()[1]) for line in handle if line.startswith("MemAvailable:"))
    print(json.dumps({"runs": runs, "mem_available_mib": available // 1024,
                      "ratios": {f"create_{r['slaves']}_over_{runs[0]['slaves']}":
                                 round(r["create_s"] / runs[0]["create_s"], 2)
                                 for r in runs[1:] if "create_s" in r and "create_s" in runs[0]}},
                     indent=1))


if __name__ == "__main__":
    main()

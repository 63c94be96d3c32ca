"""`bayctl verify` at scale (issue 16 item 4): old plan vs new, side by side in one run.

For each size of local bay (slaves) and each policy size (groups: a ring, group i reaching
group i+1 on its own TCP port, so the probed services grow with the groups) the same bay is
verified with
- new: every slave's digest by one curl, probe helpers only on slaves holding probes, each
  node's probes all in flight at once (bayctl.verify.run, the default);
- old: the plan before (a probe helper and every registration on every slave, at most 128
  probes in flight per node: verify_bay_state(legacy_plan=True));
- serial: what probing one probe at a time would cost: the sum of every probe's own duration
  in the new run (a denied probe waits its whole timeout), plus the new run's other steps.
Both verifications must find every probe as the policy says; every group pair is probed in
both (no sampling). Prints ONE JSON document, all figures from this run. Needs root.

    python3 bench/verify_scale.py [--slaves 2,16,64] [--groups 2,4,16]
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)


def ring_policy(groups):
    lines = ["apiVersion: bayctl/v1", "kind: GroupPolicy", "groups:"]
    lines += [f"  g{i:02d}: {i + 1}" for i in range(groups)]
    lines += ["rules:"] + [f"  - {{from: g{i:02d}, to: g{(i + 1) % groups:02d}, ports: [tcp/{8000 + i}]}}"
                           for i in range(groups)]
    return "\n".join(lines) + "\n"


def verify(bay, legacy_plan):
    from bayctl.verify.run import verify_bay_state

    started = time.perf_counter()
    report = verify_bay_state(bay.state, bay.nodes, ssh_user=bay.ssh_user, ssh_key=bay.ssh_key,
                              legacy_plan=legacy_plan)
    seconds = round(time.perf_counter() - started, 2)
    if report.mismatches or any(probe.observed is None for probe in report.pairs):
        raise SystemExit(f"{bay.name}: {len(report.mismatches)} mismatches; the figures would mean nothing")
    return report, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slaves", default="2,16,64")
    parser.add_argument("--groups", default="2,4,16")
    args = parser.parse_args()
    os.environ["BAYCTL_STATE_DIR"] = tempfile.mkdtemp(prefix="bb-vscale-")
    policy_dir = tempfile.mkdtemp(prefix="bb-vscale-policies-")
    from bayctl import api

    runs = []
    for slaves in [int(word) for word in args.slaves.split(",")]:
        name = f"bbvs{slaves}"
        try:
            started = time.perf_counter()
            bay = None
            for groups in [int(word) for word in args.groups.split(",")]:
                path = os.path.join(policy_dir, f"ring{groups}.yaml")
                with open(path, "w") as handle:
                    handle.write(ring_policy(groups))
                if bay is None:
                    bay = api.create_bay(name, provider="local", slaves=slaves, policy=path)
                    create_s = round(time.perf_counter() - started, 1)
                else:
                    api.apply_policy(name, path)
                    bay = api.get_bay(name)
                # Alternate which goes first, so neither always meets a warmer machine.
                order = (False, True) if groups % 2 == 0 else (True, False)
                measured = {legacy: verify(bay, legacy) for legacy in order}
                (new, new_s), (old, old_s) = measured[False], measured[True]
                probe_sum = sum(probe.seconds or 0 for probe in new.pairs)
                serial_s = round(new_s - new.phases.get("probe", 0) + probe_sum, 1)
                runs.append({
                    "slaves": slaves, "groups": groups, "create_s": create_s, "probes": len(new.pairs),
                    "services": len({probe.service for probe in new.pairs}),
                    "slaves_holding_probes": len({where["node"] for group, where in new.placement.items()
                                                  if group != "external"}),
                    "new_s": new_s, "old_s": old_s, "serial_s": serial_s,
                    "new_steps_s": new.phases, "old_steps_s": old.phases,
                    "old_over_new": round(old_s / new_s, 2), "serial_over_new": round(serial_s / new_s, 1),
                })
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
        except Exception as err:  # the size that fails is a figure too
            runs.append({"slaves": slaves, "error": str(err)})
        finally:
            api.delete_bay(name)
    print(json.dumps({"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(), "runs": runs},
                     indent=1))


if __name__ == "__main__":
    main()

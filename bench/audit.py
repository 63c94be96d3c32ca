#!/usr/bin/env python3
"""Datapath cost of audit mode: a staged policy evaluated beside the active one.

bench/datapath.py's set-up and loads (two namespaces over one veth, the classifier on the
server's eth0; iperf3 one TCP stream in Gbit/s, and 64-byte UDP datagrams/s received), with
an active policy of N entries (--entries, default 100) allowing the flow, in four cases:
  nofilter        nothing attached
  active          the classifier, nothing staged (today's datapath: one empty-slot lookup more)
  staged_same     a staged policy with the same verdicts: a second LPM lookup per packet
  staged_differs  a staged policy denying the flow: a second lookup and a would-drop count
                  (per-CPU hash update) on every packet, the most audit mode can cost
Rounds are interleaved (--rounds, default 3), each starting one case later; the medians and
their ratios to `active` and to `nofilter` come from this one run. Run as root:
`python3 bench/audit.py [--seconds 5] [--rounds 3]`. Shared 2-core VM: compare within a run.
"""

import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)
import datapath as bench  # noqa: E402  (bench/datapath.py: set-up, policies, iperf)

CASES = ("nofilter", "active", "staged_same", "staged_differs")


def configure(case, dp, server, entries):
    dp.detach("eth0", server.path)
    dp.discard_staged()
    if case == "nofilter":
        return
    dp.replace_policy(bench.bayctl_entries(entries))
    if case == "staged_same":
        dp.stage_policy(bench.bayctl_entries(entries))
    elif case == "staged_differs":
        # the same other entries, without the ones allowing this flow: every packet would drop
        dp.stage_policy([entry for entry in bench.bayctl_entries(entries)
                         if (entry[0].src_group[1], entry[0].dst_group[1]) !=
                         (bench.CLIENT_GROUP, bench.SERVER_GROUP)])
    dp.attach("eth0", server.path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--entries", type=int, default=100, help="entries of the active (and staged) policy")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/audit.py: run as root (namespaces, tc)")

    samples, would = {}, {}
    with bench.NetLab("bdau") as lab:
        client, server, dp = bench.client_and_server(lab)
        try:
            for round_index in range(args.rounds):
                shift = round_index % len(CASES)
                for case in CASES[shift:] + CASES[:shift]:
                    configure(case, dp, server, args.entries)
                    loads = {"tcp_gbit_per_s": bench.iperf(client, server, args.seconds),
                             "udp64_packets_per_s": bench.iperf(client, server, args.seconds, udp=True)}
                    for load, value in loads.items():
                        samples.setdefault(load, {}).setdefault(case, []).append(value)
                    if case == "staged_differs":   # proof the staged policy was really asked
                        counted = dp.audit_counts().get((bench.CLIENT_GROUP, bench.SERVER_GROUP), {})
                        would.setdefault(case, []).append(counted.get("would_drop_packets", 0))
            configure("nofilter", dp, server, args.entries)
        finally:
            dp.unpin()

    report = {"benchmark": "audit_mode_datapath_cost", "entries": args.entries,
              "seconds_per_case": args.seconds, "rounds": args.rounds,
              "tool": "iperf3, client ns -> veth -> server ns: one TCP stream; 64-byte UDP at full rate"}
    for load, per_case in samples.items():
        medians = {case: statistics.median(values) for case, values in per_case.items()}
        digits = 3 if load.startswith("tcp") else 0
        report[f"{load}_median"] = {case: round(value, digits) for case, value in medians.items()}
        for base in ("active", "nofilter"):
            report[f"{load}_ratio_to_{base}"] = {case: round(value / medians[base], 3)
                                                 for case, value in medians.items()}
        report[f"{load}_samples"] = {case: [round(v, digits) for v in values]
                                     for case, values in per_case.items()}
    report["staged_differs_would_drop_packets_per_round"] = would.get("staged_differs", [])
    report["load_average"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

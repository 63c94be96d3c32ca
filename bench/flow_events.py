#!/usr/bin/env python3
"""Cost of flow events (issue 15): datapath throughput with events off and on, and the flows/s
a real agent streams to a follower.

Same packet path and loads as bench/datapath.py (its machinery is reused: one TCP stream in
Gbit/s, 64-byte UDP in packets/s, new TCP connections/s), with the bayctl classifier (policy of
100 entries) on the server's eth0 and a real agent (bayctl.node.agent, its own pins) reading
the ring buffer while one follower (GET /v1/flows?follow=1) counts what it receives. Cases:
  nofilter            nothing attached
  events_off          classifier attached, flow events disabled (BAYCTL_EVENTS_OFF)
  events_default      events at the default limit (1000/s, burst 2000)
  events_unlimited    events at the largest limit (1e6/s): every new flow is reported
A TCP stream and a UDP flood are ONE flow each (one event); connections/s is the load where
every connection is a new flow, i.e. an event. Cases run in interleaved rounds (--rounds);
prints one JSON document with medians, ratios to events_off and to nofilter, the events the
kernel emitted / rate-limited / could not queue, and the flows/s the follower received.
Run as root: `python3 bench/flow_events.py [--seconds 5] [--rounds 3]`.
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)
from datapath import CLIENT_GROUP, CLIENT_IP, SERVER_GROUP, SERVER_IP, bayctl_entries, measure  # noqa: E402
from harness.netlab import NetLab  # noqa: E402

from bayctl.node.agent_process import AgentProcess  # noqa: E402
from bayctl.node.datapath import Datapath  # noqa: E402
from bayctl.policy import layout  # noqa: E402

CASES = ("nofilter", "events_off", "events_default", "events_unlimited")
LIMITS = {"events_off": (layout.EVENT_DEFAULT_RATE, layout.EVENT_DEFAULT_BURST, False),
          "events_default": (layout.EVENT_DEFAULT_RATE, layout.EVENT_DEFAULT_BURST, True),
          "events_unlimited": (layout.EVENT_MAX_RATE, layout.EVENT_MAX_BURST, True)}


DENIED_FLOOD = """
import socket, sys, time
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end, sent = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    for _ in range(100):
        try:
            sock.sendto(b"x" * 18, (sys.argv[1], 9))   # port 9: no policy entry, denied
        except OSError:
            pass
    sent += 100
print(sent)
"""


def stream_rate(dp, follower, client_ns, seconds):
    """Every denied packet an event (largest limit): what the kernel emits, what it cannot
    queue (the agent fell behind), and what the follower receives, per second."""
    dp.set_event_limit(layout.EVENT_MAX_RATE, layout.EVENT_MAX_BURST)
    before, received, started = dp.event_stats(), follower.count, time.monotonic()
    sent = int(client_ns.run(sys.executable, "-c", DENIED_FLOOD, SERVER_IP, str(seconds),
                             timeout=seconds + 60).stdout)
    time.sleep(1.0)  # the follower drains the rest
    elapsed = time.monotonic() - started
    after = dp.event_stats()
    return {"denied_packets_sent": sent,
            "kernel_emitted_per_s": round((after["emitted"] - before["emitted"]) / elapsed, 1),
            "kernel_ring_full": after["ring_full"] - before["ring_full"],
            "follower_flows_per_s": round((follower.count - received) / elapsed, 1),
            "follower_received": follower.count - received,
            "kernel_emitted": after["emitted"] - before["emitted"]}


class Follower:
    """One follower of the agent's stream, counting flows (in a thread)."""

    def __init__(self, client):
        self.count = 0
        self._stream = client.follow_flows()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        try:
            for _ in self._stream:
                self.count += 1
        except Exception:  # noqa: BLE001 - the stream ends when the bench closes the agent
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/flow_events.py: run as root (namespaces, tc, bpffs)")

    samples, events, streamed = {}, {}, {}
    run_dir = tempfile.mkdtemp(prefix="bfev-", dir="/run")
    agent = AgentProcess(os.path.join(run_dir, "agent.sock"), f"/sys/fs/bpf/bfev-{secrets.token_hex(4)}",
                         os.path.join(run_dir, "state"))
    with NetLab("bfev") as lab:
        client_ns, server_ns = lab.netns("cli"), lab.netns("srv")
        lab.veth(client_ns, f"{CLIENT_IP}/24", ifname="eth0", peer_netns=server_ns, peer="eth0",
                 peer_addr=f"{SERVER_IP}/24")
        try:
            agent.start()
            dp = Datapath(pin_dir=agent.pin_dir)
            dp.set_endpoint(CLIENT_IP, CLIENT_GROUP, local=False)
            dp.set_endpoint(SERVER_IP, SERVER_GROUP)
            dp.replace_policy(bayctl_entries(100))
            follower = Follower(agent.client)
            for round_index in range(args.rounds):
                shift = round_index % len(CASES)
                for case in CASES[shift:] + CASES[:shift]:
                    if case == "nofilter":
                        dp.detach("eth0", server_ns.path)
                    else:
                        rate, burst, enabled = LIMITS[case]
                        dp.set_event_limit(rate, burst, enabled=enabled)
                        dp.attach("eth0", server_ns.path)
                    before, received, started = dp.event_stats(), follower.count, time.monotonic()
                    for load, value in measure(client_ns, server_ns, args.seconds).items():
                        samples.setdefault(load, {}).setdefault(case, []).append(value)
                    time.sleep(0.5)  # let the follower drain what the last load emitted
                    elapsed = time.monotonic() - started
                    after = dp.event_stats()
                    delta = {name: after[name] - before[name] for name in after}
                    for name, value in delta.items():
                        events.setdefault(case, {}).setdefault(name, []).append(value)
                    streamed.setdefault(case, []).append((follower.count - received) / elapsed)
            dp.attach("eth0", server_ns.path)
            stream = [stream_rate(dp, follower, client_ns, args.seconds) for _ in range(args.rounds)]
            dp.detach("eth0", server_ns.path)
            dp.close()
        finally:
            agent.stop()
            Datapath(agent.pin_dir).unpin()
            shutil.rmtree(run_dir, ignore_errors=True)

    report = {"benchmark": "flow_events", "seconds_per_case": args.seconds, "rounds": args.rounds,
              "policy_entries": 100}
    for load, per_case in samples.items():
        medians = {case: statistics.median(values) for case, values in per_case.items()}
        digits = 3 if load.startswith("tcp_gbit") else 0
        report[f"{load}_median"] = {case: round(v, digits) for case, v in medians.items()}
        report[f"{load}_ratio_to_events_off"] = {case: round(v / medians["events_off"], 3)
                                                 for case, v in medians.items()}
        report[f"{load}_ratio_to_nofilter"] = {case: round(v / medians["nofilter"], 3)
                                               for case, v in medians.items()}
    report["kernel_events_per_case_median"] = {
        case: {name: statistics.median(values) for name, values in per_name.items()}
        for case, per_name in events.items()}
    report["follower_flows_per_s_median"] = {case: round(statistics.median(v), 1)
                                             for case, v in streamed.items()}
    report["follower_flows_per_s_max"] = round(max(max(v) for v in streamed.values()), 1)
    report["agent_stream_under_denied_flood"] = stream
    report["agent_stream_flows_per_s_median"] = statistics.median(r["follower_flows_per_s"] for r in stream)
    report["load_average"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

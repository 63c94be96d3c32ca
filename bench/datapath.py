#!/usr/bin/env python3
"""Datapath throughput: iperf3 between two namespaces over one veth pair, 5 s per case.

Two loads per case: one TCP stream (Gbit/s; GSO makes this mostly a per-64KB cost) and a UDP
flood of 64-byte datagrams (packets/s received; the per-packet cost of the filter).

Cases, all on the same packet path (client ns -> veth -> server ns), filtering at the server's
end of the veth:
  nofilter              nothing attached, no netfilter rules
  bayctl_N              the bayctl classifier on the server's eth0 (tc ingress + egress),
                        a policy of N entries: N-1 for other group pairs, 1 allowing this flow
  iptables_N            the same N rules in the server namespace's INPUT chain, the matching
                        rule last, walked by EVERY packet (as bayctl re-checks every packet);
                        OUTPUT allows the replies with one rule; no conntrack
  iptables_ct_N         the usual stateful set-up: INPUT accepts ESTABLISHED first, then the
                        N rules (only the first packet of a flow walks them)
  nofilter_again        nofilter once more at the end: how far the machine drifted meanwhile
N = 10, 100, 1000 (each allowing this flow for both TCP and UDP). Prints one JSON document:
raw Gbit/s and packets/s per case and the ratios to nofilter.
Run as root: `python3 bench/datapath.py [--seconds 5]`. Figures are noisy (shared 2-core VM):
compare within one run.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from netlab import NetLab  # noqa: E402

from bayctl.node.datapath import Datapath  # noqa: E402
from bayctl.policy import layout  # noqa: E402

CLIENT_IP, SERVER_IP = "10.88.0.1", "10.88.0.2"
CLIENT_GROUP, SERVER_GROUP = 1, 2
PORT = 5201
RULE_COUNTS = (10, 100, 1000)


def bayctl_entries(n):
    """n entries: n-1 allowing other group pairs on other ports, then the one for this flow."""
    entries = [(layout.PolicyKey.make(64, 100 + i % 1000, 2000 + i // 1000, layout.PROTO_TCP, 1000 + i),
                layout.PolicyValue(rule_id=i + 1)) for i in range(n - 1)]
    for proto in (layout.PROTO_TCP, layout.PROTO_UDP):
        entries.append((layout.PolicyKey.make(64, CLIENT_GROUP, SERVER_GROUP, proto, PORT),
                        layout.PolicyValue(rule_id=n)))
    return entries


def iptables_rules(n, stateful):
    """The same n rules as iptables-restore input: n-1 non-matching sources/ports, the match last."""
    lines = ["*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT DROP [0:0]"]
    if stateful:
        lines.append("-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
        lines.append("-A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT")
    else:
        for proto in ("tcp", "udp"):
            lines.append(f"-A OUTPUT -p {proto} -d {CLIENT_IP} --sport {PORT} -j ACCEPT")
    for i in range(n - 1):
        lines.append(f"-A INPUT -s 10.{100 + i // 250}.{i % 250}.0/24 -p tcp --dport {1000 + i} -j ACCEPT")
    for proto in ("tcp", "udp"):
        lines.append(f"-A INPUT -s {CLIENT_IP} -p {proto} --dport {PORT} -j ACCEPT")
    lines += ["-A INPUT -i lo -j ACCEPT", "-A OUTPUT -o lo -j ACCEPT", "COMMIT", ""]
    return "\n".join(lines)


def iperf(client, server, seconds, udp=False):
    """TCP: Gbit/s received. UDP (64-byte datagrams, unlimited rate): datagrams/s received."""
    srv = server.popen("iperf3", "-s", "-1", "-B", SERVER_IP, "-p", str(PORT))
    try:
        for _ in range(100):  # wait until it listens
            if f":{PORT}" in server.run("ss", "-ltn", check=False).stdout:
                break
            time.sleep(0.05)
        load = ["-u", "-l", "64", "-b", "0"] if udp else []
        out = client.run("iperf3", "-c", SERVER_IP, "-p", str(PORT), "-t", str(seconds), "-J", *load,
                         timeout=seconds + 60).stdout
    finally:
        srv.wait(timeout=30)
    result = json.loads(out)
    if udp:
        total = result["end"]["sum"]
        return (total["packets"] - total["lost_packets"]) / total["seconds"]
    return result["end"]["sum_received"]["bits_per_second"] / 1e9


def measure(client, server, seconds):
    return {"tcp_gbit_per_s": iperf(client, server, seconds),
            "udp64_packets_per_s": iperf(client, server, seconds, udp=True)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/datapath.py: run as root (namespaces, tc, iptables)")

    results = {}
    with NetLab("bdpb") as lab:
        client, server = lab.netns("cli"), lab.netns("srv")
        lab.veth(client, f"{CLIENT_IP}/24", ifname="eth0", peer_netns=server, peer="eth0",
                 peer_addr=f"{SERVER_IP}/24")
        results["nofilter"] = measure(client, server, args.seconds)

        dp = Datapath(pin_dir=f"/sys/fs/bpf/bdpb-{lab.run_id}")
        dp.load()
        try:
            ifindex = dp.attach("eth0", server.path)
            dp.set_endpoint(CLIENT_IP, CLIENT_GROUP, local=False)
            dp.set_endpoint(SERVER_IP, SERVER_GROUP, ifindex=ifindex)
            for n in RULE_COUNTS:
                dp.replace_policy(bayctl_entries(n))
                results[f"bayctl_{n}"] = measure(client, server, args.seconds)
            # proof that the classifier really decided on this traffic
            enforced = {f"{src}->{dst}": c["allowed_packets"] for (src, dst), c in dp.counters().items()}
            enforced["drops"] = dp.drops()
            dp.detach("eth0", server.path)
        finally:
            dp.unpin()

        for stateful, name in ((False, "iptables"), (True, "iptables_ct")):
            for n in RULE_COUNTS:
                server.run("iptables-restore", input=iptables_rules(n, stateful))
                results[f"{name}_{n}"] = measure(client, server, args.seconds)
                server.run("iptables", "-F")
                server.run("iptables", "-P", "INPUT", "ACCEPT")
                server.run("iptables", "-P", "OUTPUT", "ACCEPT")
        # the machine drifts (shared CPUs): a second unfiltered run shows by how much
        results["nofilter_again"] = measure(client, server, args.seconds)

    base = results["nofilter"]
    print(json.dumps({
        "benchmark": "datapath_throughput",
        "tool": "iperf3, client ns -> veth -> server ns: one TCP stream; 64-byte UDP at full rate",
        "seconds_per_case": args.seconds,
        "iptables": subprocess.run(["iptables", "-V"], capture_output=True, text=True).stdout.strip(),
        "tcp_gbit_per_s": {case: round(r["tcp_gbit_per_s"], 3) for case, r in results.items()},
        "tcp_ratio_to_nofilter": {case: round(r["tcp_gbit_per_s"] / base["tcp_gbit_per_s"], 3)
                                  for case, r in results.items()},
        "udp64_packets_per_s": {case: round(r["udp64_packets_per_s"]) for case, r in results.items()},
        "udp64_ratio_to_nofilter": {case: round(r["udp64_packets_per_s"] / base["udp64_packets_per_s"], 3)
                                    for case, r in results.items()},
        "bayctl_allowed_packets": enforced,
        "load_average": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    main()

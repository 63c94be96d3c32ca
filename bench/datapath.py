#!/usr/bin/env python3
"""Datapath throughput: iperf3 between two namespaces over one veth pair, 5 s per case.

Three loads per case: one TCP stream (Gbit/s; GSO makes this mostly a per-64KB cost), a UDP
flood of 64-byte datagrams (packets/s received; the per-packet cost of the filter), and new
TCP connections per second (connect, one byte each way, close with RST; one client, one
server, both Python: the cost of conntrack's create/update/close path per connection).

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
N = 10, 100, 1000 (each allowing this flow for both TCP and UDP). The cases run in interleaved
rounds (--rounds, default 3), each round starting one case later, so drift of the shared
machine hits all of them alike. --cases picks some (e.g. nofilter,bayctl_100). Prints one JSON
document: every sample, the median per load and case, and the ratios of the medians to nofilter.
Run as root: `python3 bench/datapath.py [--seconds 5]`. Figures are noisy (shared 2-core VM):
compare within one run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)
from harness.netlab import NetLab  # noqa: E402

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
    entries.append((layout.PolicyKey.make(64, CLIENT_GROUP, SERVER_GROUP, layout.PROTO_TCP, PORT + 1),
                    layout.PolicyValue(rule_id=n)))   # the connection-rate server
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
    lines.append(f"-A INPUT -s {CLIENT_IP} -p tcp --dport {PORT + 1} -j ACCEPT")
    if not stateful:
        lines.append(f"-A OUTPUT -p tcp -d {CLIENT_IP} --sport {PORT + 1} -j ACCEPT")
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


CONNECT_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1024)
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    try:
        if conn.recv(1):
            conn.send(b"y")
    except OSError:
        pass
    conn.close()
"""

CONNECT_CLIENT = """
import socket, struct, sys, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
linger = struct.pack("ii", 1, 0)   # close with RST: no TIME_WAIT, the port range never runs dry
done, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    s.connect((host, port))
    s.send(b"x")
    s.recv(1)
    s.close()
    done += 1
print(done / (time.monotonic() - start))
"""


def connection_rate(client, server, seconds):
    """New TCP connections per second, each a full open / exchange / close."""
    srv = server.popen(sys.executable, "-c", CONNECT_SERVER, SERVER_IP, str(PORT + 1),
                       stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        out = client.run(sys.executable, "-c", CONNECT_CLIENT, SERVER_IP, str(PORT + 1), str(seconds),
                         timeout=seconds + 60).stdout
    finally:
        srv.kill()
        srv.wait(timeout=30)
    return float(out)


def measure(client, server, seconds):
    return {"tcp_gbit_per_s": iperf(client, server, seconds),
            "udp64_packets_per_s": iperf(client, server, seconds, udp=True),
            "tcp_connections_per_s": connection_rate(client, server, seconds)}


class Cases:
    """Puts the server namespace into one case's configuration (and back to no filter)."""

    def __init__(self, server, datapath):
        self.server, self.dp = server, datapath

    def names(self):
        return (["nofilter"] + [f"bayctl_{n}" for n in RULE_COUNTS] + [f"iptables_{n}" for n in RULE_COUNTS]
                + [f"iptables_ct_{n}" for n in RULE_COUNTS])

    def configure(self, case):
        self.reset()
        kind, _, count = case.rpartition("_")
        if case == "nofilter":
            return
        if kind == "bayctl":
            self.dp.replace_policy(bayctl_entries(int(count)))
            self.dp.attach("eth0", self.server.path)
        else:
            self.server.run("iptables-restore", input=iptables_rules(int(count), kind == "iptables_ct"))

    def reset(self):
        self.dp.detach("eth0", self.server.path)
        self.server.run("iptables", "-F")
        for chain in ("INPUT", "FORWARD", "OUTPUT"):
            self.server.run("iptables", "-P", chain, "ACCEPT")


def client_and_server(lab):
    """The client and server namespaces over one veth, and a loaded Datapath (pins under the
    lab's own name: unpin it when done) knowing both endpoints; nothing attached yet."""
    client, server = lab.netns("cli"), lab.netns("srv")
    lab.veth(client, f"{CLIENT_IP}/24", ifname="eth0", peer_netns=server, peer="eth0",
             peer_addr=f"{SERVER_IP}/24")
    dp = Datapath(pin_dir=f"/sys/fs/bpf/{lab.prefix}-{lab.run_id}")
    dp.load()
    try:
        server_ifindex = int(server.run("ip", "-o", "link", "show", "dev", "eth0").stdout.split(":")[0])
        dp.set_endpoint(CLIENT_IP, CLIENT_GROUP, local=False)
        dp.set_endpoint(SERVER_IP, SERVER_GROUP, ifindex=server_ifindex)
    except BaseException:
        dp.unpin()
        raise
    return client, server, dp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3,
                        help="every case once per round, rounds interleaved; the median is reported")
    parser.add_argument("--cases", default="",
                        help="comma-separated cases to run (default all; nofilter is always run)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/datapath.py: run as root (namespaces, tc, iptables)")

    samples = {}
    with NetLab("bdpb") as lab:
        client, server, dp = client_and_server(lab)
        try:
            cases = Cases(server, dp)
            names = cases.names()
            if args.cases:
                wanted = set(args.cases.split(",")) | {"nofilter"}
                unknown = wanted - set(names)
                if unknown:
                    sys.exit(f"bench/datapath.py: --cases: unknown {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(names)})")
                names = [name for name in names if name in wanted]
            for round_index in range(args.rounds):
                shift = round_index % len(names)
                for case in names[shift:] + names[:shift]:
                    cases.configure(case)
                    for load, value in measure(client, server, args.seconds).items():
                        samples.setdefault(load, {}).setdefault(case, []).append(value)
            cases.reset()
            # proof that the classifier really decided on the bayctl cases' traffic
            enforced = {f"{src}->{dst}": c["allowed_packets"] for (src, dst), c in dp.counters().items()}
            enforced["drops"] = dp.drops()
            conntrack = dp.conntrack()
        finally:
            dp.unpin()

    report = {
        "benchmark": "datapath_throughput",
        "tool": "iperf3, client ns -> veth -> server ns: one TCP stream; 64-byte UDP at full rate; "
                "Python connect/exchange/RST-close loop for connections/s",
        "seconds_per_case": args.seconds,
        "rounds": args.rounds,
        "iptables": subprocess.run(["iptables", "-V"], capture_output=True, text=True).stdout.strip(),
    }
    for load, per_case in samples.items():
        medians = {case: statistics.median(values) for case, values in per_case.items()}
        digits = 3 if load.startswith("tcp_gbit") else 0
        report[f"{load}_median"] = {case: round(value, digits) for case, value in medians.items()}
        report[f"{load}_ratio_to_nofilter"] = {case: round(value / medians["nofilter"], 3)
                                               for case, value in medians.items()}
        report[f"{load}_samples"] = {case: [round(v, digits) for v in values]
                                     for case, values in per_case.items()}
    report["bayctl_allowed_packets"] = enforced
    report["conntrack_entries_left"] = len(conntrack)
    report["load_average"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

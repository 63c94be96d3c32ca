#!/usr/bin/env python3
"""Policy distribution at scale: the bay's ZooKeeper vs SSH push, and the node's own figures.

All side by side from one run, one JSON document on stdout (progress on stderr). Run as root.

1. distribution: time from `policy apply` to every node reporting the new digest, at each size
   (default 10, 200, 1000), through a real ZooKeeper (Debian's, private port and data dir:
   bayctl.providers.local_zookeeper) vs pushed over SSH (bayctl.seed, curl mode, as `policy apply
   --distribution ssh`). Nodes up to --real (200) are real: a real sshd and a real agent each
   (tests/fixtures_sshd.py, the eBPF datapath loaded); the agents watch ZooKeeper through
   their API (`PUT /v1/distribution`). Beyond --real the extra nodes are WATCHER-ONLY clients:
   the agent's real code path (bayctl.node.zkwatch.PolicyWatcher -> Agent.apply_policy: parse,
   validate, compile, atomic state write, report) with a datapath that does nothing, a kazoo
   session each, in a few worker processes. SSH push beyond --real is not measured (the
   machine holds no more real nodes): the output says so, with the per-node rate at --real.
   Per phase: ZooKeeper's CPU and memory, the agents' and the watcher-only clients' CPU and
   memory, per node.
2. agent_memory: one real agent's RSS idle (no endpoints) and with 10,000 endpoints (restored
   from its state file at start: the same registrations, each an endpoint-map entry).
3. put_policy: `PUT /v1/policy` end to end (HTTP, parse, compile, swap, fsync) at 1k/10k/100k
   entries (bench/agent_apply.py's policies).
4. cni: bayctl-cni ADD and DEL latency, p50/p99, for 50 containers started (then deleted) at once.

Usage: python3 bench/scale.py [--sizes 10,200,1000] [--real 200] [--sections all]
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)

EXAMPLES = os.path.join(HERE, "..", "bayctl", "share", "policies")
WATCHERS_PER_WORKER = 100
SECTIONS = ("distribution", "agent_memory", "put_policy", "cni")


def log(message):
    print(f"bench/scale: {message}", file=sys.stderr, flush=True)


def read_example(name):
    with open(os.path.join(EXAMPLES, name)) as handle:
        return handle.read()


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(") ", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# -- watcher-only clients (a worker process hosts many) ----------------------------------------------


class NullDatapath:
    """The datapath calls the agent makes, doing nothing: watcher-only clients have no kernel side."""

    def load(self):
        pass

    def replace_policy(self, entries):
        pass

    def clear_policy(self):
        pass

    def endpoints(self):
        return {}


def run_worker(config_file):
    """A worker process: one PolicyWatcher per node named in config_file, until stdin closes."""
    from bayctl.node.agent import Agent
    from bayctl.node.state import StateStore
    from bayctl.node.zkwatch import PolicyWatcher

    with open(config_file) as handle:
        spec = json.load(handle)
    watchers = []
    for node in spec["nodes"]:
        store_dir = os.path.join(spec["state_dir"], node)
        agent = Agent(NullDatapath(), StateStore(store_dir))
        agent.start()
        watcher = PolicyWatcher(agent, dict(spec["config"], node=node), state_dir=store_dir)
        watcher.start()
        watchers.append(watcher)
    print("ready", flush=True)
    sys.stdin.read()
    for watcher in watchers:
        watcher.stop()


class WatcherFleet:
    def __init__(self, workdir, config, names):
        self.processes = []
        for start in range(0, len(names), WATCHERS_PER_WORKER):
            chunk = names[start:start + WATCHERS_PER_WORKER]
            path = os.path.join(workdir, f"watchers-{start}.json")
            with open(path, "w") as handle:
                json.dump({"nodes": chunk, "config": config, "state_dir": os.path.join(workdir, "watchers")},
                          handle)
            process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", path],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.processes.append(process)
        for process in self.processes:
            process.stdout.readline()

    def pids(self):
        return [process.pid for process in self.processes]

    def close(self):
        for process in self.processes:
            try:
                process.stdin.close()
                process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()


# -- section 1: distribution ----------------------------------------------------------------------


def distribution(sizes, real, workdir):
    from harness.fixtures_sshd import SshdBay

    from bayctl.distribution import zookeeper
    from bayctl.node.client import AgentClient
    from bayctl.policy import parse_policy
    from bayctl.providers.local_zookeeper import ZooKeeperServer
    from bayctl.seed import seed_policy

    real = min(real, max(sizes))
    server = ZooKeeperServer(os.path.join(workdir, "zookeeper"), port=free_port())
    server.start()
    zk_idle_kb = rss_kb(server.pid())
    log(f"ZooKeeper on {server.hosts}; starting {real} real nodes (sshd + agent)")
    bay = SshdBay(real, ready_timeout=300)
    texts = [read_example(name) for name in ("web-db.yaml", "stars.yaml", "gist-numeric.yaml")]
    secrets = zookeeper.Credentials.new(server.hosts, "scale", owns_root=True)
    out = []
    try:
        for size in sizes:
            n_real = min(size, real)
            # One pair of secrets for the run ("/" is locked to them), one bay root per size.
            creds = zookeeper.Credentials(server.hosts, f"/bayctl/scale-{size}", secrets.bayctl_secret,
                                          secrets.agent_secret, owns_root=True)
            client = zookeeper.connect(creds)
            zookeeper.prepare(client, creds)
            for slave in bay.slaves[:n_real]:
                AgentClient(slave.socket, timeout=30)._request(
                    "PUT", "/v1/distribution", body=json.dumps(creds.agent_config(slave.name)).encode(),
                    headers={"Content-Type": "application/json"})
            names = [slave.name for slave in bay.slaves[:n_real]]
            fleet = None
            extra = [f"watcher{i}" for i in range(size - n_real)]
            if extra:
                log(f"{size} nodes: starting {len(extra)} watcher-only clients")
                fleet = WatcherFleet(workdir, creds.agent_config("x"), extra)
            nodes = names + extra
            # Every node on a known version first (not timed), then the timed change.
            first, second = texts[0], texts[1]
            zookeeper.publish(client, creds, first, parse_policy(first).digest, "bench-first")
            settled = zookeeper.wait_for_reports(client, creds, nodes, parse_policy(first).digest, 600)
            assert all(o["ok"] for o in settled.values()), [n for n, o in settled.items() if not o["ok"]][:5]
            agents = [slave.agent.pid for slave in bay.slaves[:n_real]]
            workers = fleet.pids() if fleet else []
            zk_pid = server.pid()
            before = (cpu_seconds(zk_pid), sum(map(cpu_seconds, agents)), sum(map(cpu_seconds, workers)))
            log(f"{size} nodes: through ZooKeeper")
            start = time.monotonic()
            zookeeper.publish(client, creds, second, parse_policy(second).digest, "bench-second")
            outcome = zookeeper.wait_for_reports(client, creds, nodes, parse_policy(second).digest, 600)
            zk_seconds = time.monotonic() - start
            after = (cpu_seconds(zk_pid), sum(map(cpu_seconds, agents)), sum(map(cpu_seconds, workers)))
            zk_cpu, agents_cpu, workers_cpu = (a - b for a, b in zip(after, before))
            failed = [n for n, o in outcome.items() if not o["ok"]]
            row = {
                "nodes": size, "real_agents": n_real, "watcher_only_clients": len(extra),
                "zookeeper": {
                    "seconds_to_all_reporting": round(zk_seconds, 3), "not_reporting": failed[:5],
                    "zookeeper_cpu_ms_per_node": round(1000 * zk_cpu / size, 2),
                    "zookeeper_rss_mb": round(rss_kb(zk_pid) / 1024, 1),
                    # JVM heap grows and is not given back: growth since start over the nodes so far
                    "zookeeper_rss_growth_kb_per_node": round((rss_kb(zk_pid) - zk_idle_kb) / size, 1),
                    "agent_cpu_ms_per_node": round(1000 * agents_cpu / n_real, 2),
                    "agent_rss_mb_each": round(statistics.mean(map(rss_kb, agents)) / 1024, 1),
                },
            }
            # Every node's apply runs on this machine's few cores here (on a cluster each on its own):
            # the CPU all of them and ZooKeeper spent, spread over the cores, is this machine's floor.
            row["zookeeper"]["machine_cpu_floor_seconds"] = round(
                (zk_cpu + agents_cpu + workers_cpu) / os.cpu_count(), 2)
            if extra:
                row["zookeeper"]["watcher_only_cpu_ms_per_node"] = round(1000 * workers_cpu / len(extra), 2)
                row["zookeeper"]["watcher_only_rss_kb_per_node"] = round(
                    sum(map(rss_kb, workers)) / len(extra), 1)
            if size <= real:
                log(f"{size} nodes: over SSH")
                wanted = parse_policy(texts[2]).digest
                before_agents = sum(map(cpu_seconds, agents))
                start = time.monotonic()
                results = seed_policy(bay.nodes()[:size], texts[2], remote="curl", concurrency=32,
                                      raise_on_failure=False, **bay.seed_options())
                ssh_seconds = time.monotonic() - start
                row["ssh"] = {"seconds_to_all_reporting": round(ssh_seconds, 3),
                              "not_reporting": [r.node for r in results
                                                if not r.ok or r.digest != wanted][:5],
                              "agent_cpu_ms_per_node": round(
                                  1000 * (sum(map(cpu_seconds, agents)) - before_agents) / size, 2)}
                row["ratio_ssh_vs_zookeeper"] = round(ssh_seconds / zk_seconds, 2)
            else:
                per_node = out[-1]["ssh"]["seconds_to_all_reporting"] / out[-1]["nodes"] if out and \
                    "ssh" in out[-1] else None
                row["ssh"] = {"measured": False,
                              "why": f"only {real} real nodes (sshd + agent) fit on this machine",
                              "linear_estimate_seconds": round(per_node * size, 2) if per_node else None}
            out.append(row)
            log(json.dumps(row))
            if fleet:
                fleet.close()
            client.stop()
            client.close()
    finally:
        bay.close()
        server.stop()
    return out


# -- sections 2 and 3: one real agent ---------------------------------------------------------------


def start_agent(workdir, name, endpoints=0):
    import secrets

    from bayctl.node.agent_process import AgentProcess

    state = os.path.join(workdir, name, "state")
    os.makedirs(state, mode=0o700)
    if endpoints:
        saved = [{"ip": f"10.{200 + i // 65536}.{(i // 256) % 256}.{i % 256}", "tag": 100 + i % 8,
                  "registered_as": 100 + i % 8, "ifname": None, "netns": None} for i in range(endpoints)]
        with open(os.path.join(state, "endpoints.json"), "w") as handle:
            json.dump({"endpoints": saved}, handle)
    pin_dir = f"/sys/fs/bpf/bscale-{secrets.token_hex(3)}"
    agent = AgentProcess(os.path.join(workdir, name, "agent.sock"), pin_dir, state)
    try:
        agent.start(timeout=300)
    except BaseException:
        stop_agent(agent)   # its pins, even when it never answered
        raise
    return agent


def stop_agent(agent):
    from bayctl.node.datapath import Datapath

    agent.close()
    Datapath(agent.pin_dir).unpin()


def agent_memory(workdir):
    out = {}
    for label, count in (("idle", 0), ("endpoints_10000", 10_000)):
        agent = start_agent(workdir, f"mem-{count}", endpoints=count)
        try:
            agent.client.apply_policy(read_example("web-db.yaml"))
            held = agent.client.health()["endpoints"]
            out[label] = {"endpoints": held, "rss_mb": round(rss_kb(agent.process.pid) / 1024, 1)}
        finally:
            stop_agent(agent)
    out["ratio_rss_10000_vs_idle"] = round(out["endpoints_10000"]["rss_mb"] / out["idle"]["rss_mb"], 2)
    return out


def put_policy(workdir):
    from agent_apply import policy_text

    from bayctl.policy import compile_policy, parse_policy

    agent = start_agent(workdir, "put")
    out = []
    try:
        for size in (1_000, 10_000, 100_000):
            text = policy_text(size)
            entries = len(list(compile_policy(parse_policy(text))))
            start = time.monotonic()
            agent.client.apply_policy(text)
            out.append({"target_entries": size, "entries": entries, "yaml_bytes": len(text),
                        "put_seconds": round(time.monotonic() - start, 3)})
            log(json.dumps(out[-1]))
    finally:
        stop_agent(agent)
    return out


# -- section 4: CNI ---------------------------------------------------------------------------------


def cni(workdir, containers=50):
    import hashlib
    import secrets

    agent = start_agent(workdir, "cni")
    tag = secrets.token_hex(2)
    plugin = shutil.which("bayctl-cni")
    config = {"cniVersion": "1.0.0", "name": f"bscale-{tag}", "type": "bayctl-cni",
              "agentSocket": agent.socket_path, "stateDir": os.path.join(workdir, "cni-state"),
              "linkPrefix": "bscl", "group": "web", "ipam": {"type": "bayctl", "subnet": "10.239.0.0/24"}}
    namespaces = [f"bscale-{tag}-{i}" for i in range(containers)]
    try:
        agent.client.apply_policy(read_example("web-db.yaml"))
        for name in namespaces:
            subprocess.run(["ip", "netns", "add", name], check=True)

        def call(command, index):
            env = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": f"{tag}-{index}",
                   "CNI_NETNS": f"/run/netns/{namespaces[index]}", "CNI_IFNAME": "eth0", "CNI_ARGS": "",
                   "CNI_PATH": os.path.dirname(plugin)}
            gate.wait()
            start = time.monotonic()
            done = subprocess.run([plugin], input=json.dumps(config).encode(), capture_output=True, env=env)
            seconds = time.monotonic() - start
            if done.returncode != 0:
                raise RuntimeError(f"{command} {index}: {done.stdout.decode()[:300]} "
                                   f"{done.stderr.decode()[:300]}")
            return seconds

        out = {}
        # The yardstick, same run: one container at a time (ADD then DEL), a few times.
        alone = {"ADD": [], "DEL": []}
        gate = threading.Barrier(1)
        for index in range(5):
            for command in ("ADD", "DEL"):
                alone[command].append(call(command, index))
        for command in ("ADD", "DEL"):
            gate = threading.Barrier(containers)
            with concurrent.futures.ThreadPoolExecutor(containers) as pool:
                samples = list(pool.map(lambda i, c=command: call(c, i), range(containers)))
            out[command] = {"p50_ms": round(1000 * percentile(samples, 0.5), 1),
                            "p99_ms": round(1000 * percentile(samples, 0.99), 1),
                            "max_ms": round(1000 * max(samples), 1),
                            "alone_p50_ms": round(1000 * statistics.median(alone[command]), 1)}
            out[command]["ratio_p50_at_once_vs_alone"] = round(
                out[command]["p50_ms"] / out[command]["alone_p50_ms"], 1)
        out["containers_at_once"] = containers
        return out
    finally:
        for name in namespaces:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        key = hashlib.sha256(config["name"].encode()).hexdigest()
        subprocess.run(["ip", "link", "del", f"bsclN{key[:8]}"], capture_output=True)
        subprocess.run(["ip", "link", "del", f"bscln{key[:8]}"], capture_output=True)
        stop_agent(agent)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,200,1000")
    parser.add_argument("--real", type=int, default=200)
    parser.add_argument("--sections", default="all")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(args.worker)
    if os.geteuid() != 0:
        sys.exit("bench/scale.py: run as root (agents load the eBPF datapath)")
    sections = SECTIONS if args.sections == "all" else tuple(args.sections.split(","))
    sizes = [int(size) for size in args.sizes.split(",")]
    workdir = tempfile.mkdtemp(prefix="bscale-", dir="/work" if os.path.isdir("/work") else None)
    report = {"benchmark": "scale", "cpus": os.cpu_count(), "sizes": sizes, "real_nodes": args.real,
              "note": (f"nodes beyond {args.real} are watcher-only clients: the agent's real watch, "
                       "validate, apply (parse, compile, atomic state write) and report code path "
                       "without a datapath")}
    try:
        if "distribution" in sections:
            report["distribution"] = distribution(sizes, args.real, workdir)
        if "agent_memory" in sections:
            report["agent_memory"] = agent_memory(workdir)
        if "put_policy" in sections:
            report["put_policy"] = put_policy(workdir)
        if "cni" in sections:
            report["cni"] = cni(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

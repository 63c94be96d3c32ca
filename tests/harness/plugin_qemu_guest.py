"""Runs INSIDE the qemu guest (see plugin_qemu.py): the plugin code on real ipvlan slaves.

A dummy parent stands for the node's NIC. The node agent runs with its own pins; "containers"
are network namespaces given interfaces by the CNI plugin's ADD (the same links.py code the
Docker driver uses) in ipvlan l2 mode. Every check is printed as one RESULT line:
{"check": name, "ok": bool, "detail": ...}; the host-side test asserts on them.
"""

import json
import os
import subprocess
import sys
import time
import traceback

RESULT_TAG = "BPLG-RESULT "
POLICY = """\
apiVersion: bayctl/v1
kind: GroupPolicy
groups:
  web: 100
  db: 200
rules:
  - from: web
    to: db
    ports: [tcp/5432]
  - from: web
    to: external
    ports: [icmp]
"""
PARENT = "bplgpar0"
NODE_ADDRESS = "192.168.77.1"
PAGE = "bplg"  # what the servers' index.html holds (fixtures_docker.py writes it too)
HTTP_GET = "GET / HTTP/1.0\r\n\r\n"
WWW = "/tmp/www"
# ipvlan l3 gets a parent of its own (see l3_part).
L3_PARENT = "bplgpar1"
L3_NODE_ADDRESS = "192.168.78.1"


def report(check, ok, detail=""):
    line = json.dumps({"check": check, "ok": bool(ok), "detail": str(detail)[-1500:]})
    print(RESULT_TAG + line, flush=True)


def sh(*argv, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, **kw)


def in_ns(netns, *argv, **kw):
    return sh("nsenter", f"--net={netns}", "busybox", *argv, **kw)


# Each probe asserts the traffic itself: the server's page came back / the echo reply came.
def tcp_page(netns, ip, port, tries=1):
    return any(PAGE in in_ns(netns, "nc", "-w", "2", ip, str(port), input=HTTP_GET).stdout
               for _ in range(tries))


def echo_reply(netns, ip, tries=1):
    return any(f"bytes from {ip}" in in_ns(netns, "ping", "-c", "1", "-W", "2", ip).stdout
               for _ in range(tries))


def main():
    from bayctl.errors import NodeError
    from bayctl.node import cni, links
    from bayctl.node.client import AgentClient

    report("kernel", True, os.uname().release)
    # No init system brought the node's loopback up, as every real node has it: without it, an
    # ipvlan l3 slave's packets to the node's own addresses (routed locally, via lo) are lost.
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", PARENT, "type", "dummy")
    sh("ip", "link", "set", PARENT, "up")
    sh("ip", "addr", "add", f"{NODE_ADDRESS}/24", "dev", PARENT)
    report("ipvlan supported", links.ipvlan_supported(PARENT))
    report("auto mode picks ipvlan-l2", links.choose_mode("auto", PARENT) == "ipvlan-l2")

    socket = "/run/bplg-agent.sock"
    agent_log = open("/tmp/agent.log", "w")
    agent = subprocess.Popen([sys.executable, "-m", "bayctl.cli.main", "node", "agent", "--socket", socket,
                              "--pin-dir", "/sys/fs/bpf/bplg-vm", "--state-dir", "/tmp/agent-state"],
                             stdout=agent_log, stderr=agent_log)
    client = AgentClient(socket)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            client.health()
            break
        except Exception:
            time.sleep(0.2)
    if agent.poll() is not None or time.monotonic() >= deadline:
        agent_log.flush()
        with open("/tmp/agent.log") as f:
            report("agent up", False, f.read()[-1500:])
        return
    report("agent up", client.health().get("ok"))
    try:
        client.apply_policy(POLICY, source="guest-policy")
        policy_applied = True
    except NodeError as e:
        policy_applied = False
        report("policy applied", False, e)
    else:
        report("policy applied", True)
    # Without a policy, groups can only be given as tags (names resolve through the policy).
    group_of = {"web": "web", "db": "db"} if policy_applied else {"web": 100, "db": 200}

    def config(name, subnet, group):
        return {"cniVersion": "1.0.0", "name": name, "type": "bayctl-cni", "group": group,
                "linkMode": "ipvlan-l2", "parent": PARENT, "agentSocket": socket, "stateDir": "/tmp/cni",
                "linkPrefix": "bplg", "ipam": {"type": "bayctl", "subnet": subnet}}

    nets = {"web": config("bplg-vweb", "10.77.0.0/24", group_of["web"]),
            "db": config("bplg-vdb", "10.78.0.0/24", group_of["db"])}
    boxes = {}
    holders = []
    for box, group in (("w1", "web"), ("w2", "web"), ("d1", "db")):
        added = cni_add(box, nets[group], holders)
        if added is None:
            return
        netns, ip, result = added
        boxes[box] = (netns, ip, group, result)
        info = links.describe_in_netns(netns, "eth0")
        report(f"{box} has an ipvlan slave", info and info["kind"] == "ipvlan", info)
        filters = sh("nsenter", f"--net={netns}", "tc", "filter", "show", "dev", "eth0", "ingress").stdout
        report(f"{box} policy program attached in its namespace", "bpf" in filters, filters)

    w1, w2, d1 = boxes["w1"], boxes["w2"], boxes["d1"]
    www = WWW
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write(PAGE + "\n")
    servers = [subprocess.Popen(["nsenter", f"--net={b[0]}", "busybox", "httpd", "-f", "-p", port, "-h", www])
               for b, port in ((d1, "5432"), (w1, "80"))]
    time.sleep(0.5)

    def tcp(src, ip, port, tries=1):
        return tcp_page(src[0], ip, port, tries)

    def ping(src, ip, tries=1):
        return echo_reply(src[0], ip, tries)

    if policy_applied:
        report("allow web -> db tcp/5432", tcp(w1, d1[1], 5432, tries=3))
        report("deny web -> db icmp", not ping(w1, d1[1]))
        report("deny db -> web tcp/80", not tcp(d1, w1[1], 80))
        report("allow web <-> web (intra-group)", ping(w2, w1[1], tries=3) and tcp(w2, w1[1], 80, tries=3))
        gateway = w1[3]["ips"][0]["gateway"]
        report("web reaches its node at the gateway slave", ping(w1, gateway, tries=3), gateway)
        report("web reaches its node's own address on the parent", ping(w1, NODE_ADDRESS, tries=3))
        report("deny db -> node (no db -> external rule)", not ping(d1, NODE_ADDRESS))
        stats = client.stats()
        report("drops counted", sum(p.get("dropped_packets", 0) for p in stats.get("pairs", [])) > 0, stats)
    else:
        # No policy in force: the attached programs must drop everything (fail closed).
        report("fail closed: web -> web dropped without a policy", not ping(w2, w1[1]))
        report("fail closed: web -> db dropped without a policy", not tcp(w1, d1[1], 5432))
        drops = client.stats().get("drops", {})
        report("fail closed: drops counted as no-policy", sum(drops.values()) > 0, drops)

    for box, (netns, _ip, group, result) in boxes.items():
        env = {"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": box, "CNI_NETNS": netns, "CNI_IFNAME": "eth0"}
        out, status = cni.run(env, json.dumps({**nets[group], "prevResult": result}))
        report(f"CHECK {box}", status == 0, out)
    for server in servers:
        server.kill()
    for box, (netns, _ip, group, _) in boxes.items():
        env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": box, "CNI_NETNS": netns, "CNI_IFNAME": "eth0"}
        statuses = [cni.run(env, json.dumps(nets[group]))[1] for _ in range(2)]
        report(f"DEL {box} twice", statuses == [0, 0], statuses)
    left = [e["ip"] for e in client.endpoints()]
    report("no agent endpoints left", not left, left)
    slaves = [line for line in sh("ip", "-o", "link", "show", "type", "ipvlan").stdout.splitlines()
              if "bplgn" not in line]
    report("no container slaves left in the node namespace", not slaves, slaves)
    for holder in holders:
        holder.kill()
    try:
        l3_part(client, socket, group_of)
    except Exception:
        report("l3 part", False, traceback.format_exc())
    try:
        docker_part(client, socket, policy_applied, group_of)
    except Exception:
        report("docker part", False, traceback.format_exc())
    agent.terminate()
    agent.wait(30)


def docker_part(client, agent_socket, policy_applied, group_of):
    """The Docker driver in ipvlan l2 mode: real dockerd, slaves moved in by docker itself."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
    from harness.fixtures_docker import IMAGE, Dockerd, Plugin

    class AgentRef:
        socket = agent_socket

    os.makedirs("/tmp/docker")
    daemon = Dockerd("/tmp/docker")
    daemon.start_timeout = 300
    daemon.start()
    daemon.import_busybox_image()
    plugin = Plugin("/tmp", "vm", AgentRef(), extra_args=["--link-mode", "ipvlan-l2", "--parent", PARENT])
    plugin.start_timeout = 300
    plugin.start()
    try:
        create = ("network", "create", "-d", plugin.name, "--ipam-driver", plugin.name)
        daemon.docker(*create, "--subnet", "10.87.0.0/24", "-o", f"bayctl.group={group_of['web']}", "dweb")
        daemon.docker(*create, "--subnet", "10.88.0.0/24", "-o", f"bayctl.group={group_of['db']}", "ddb")
        for name, net, command in (("dw1", "dweb", "sleep 3600"), ("dd1", "ddb", "httpd -f -p 5432 -h /www")):
            result = daemon.docker("run", "-d", "--name", name, "--network", net, IMAGE, *command.split(),
                                   check=False)
            report(f"docker run {name}", result.returncode == 0, result.stderr)
        ip = {n: daemon.out("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", n)
              for n in ("dw1", "dd1")}
        pid = daemon.out("inspect", "-f", "{{.State.Pid}}", "dw1")
        details = sh("nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-d", "link", "show", "eth0").stdout
        report("docker: container has an ipvlan l2 slave", "ipvlan" in details and "mode l2" in details,
               details)
        attached, filters = False, ""
        deadline = time.monotonic() + 240  # software emulation on a shared machine: be patient
        while time.monotonic() < deadline and not attached:
            entry = {e["ip"]: e for e in client.endpoints()}.get(ip["dw1"], {})
            filters = sh("nsenter", f"--net=/proc/{pid}/ns/net", "tc", "filter", "show", "dev", "eth0",
                         "ingress").stdout
            attached = entry.get("ifname") == "eth0" and "bpf" in filters
            time.sleep(0.2)
        report("docker: policy program attached on the slave inside the container", attached,
               f"{entry} {filters}")

        def page(box, to_ip, port, tries=1):
            """The server's page through `docker exec` (-i: nc sends the request on stdin)."""
            runs = [daemon.docker("exec", "-i", box, "nc", "-w", "2", to_ip, str(port),
                                  input=HTTP_GET.encode(), check=False) for _ in range(tries)]
            return any(PAGE in r.stdout.decode(errors="replace") for r in runs), runs[-1]

        def exec_ping(box, to_ip, tries=1):
            runs = [daemon.docker("exec", box, "ping", "-c", "1", "-W", "2", to_ip, check=False)
                    for _ in range(tries)]
            return any(f"bytes from {to_ip}" in r.stdout.decode(errors="replace") for r in runs), runs[-1]

        def seen(run):
            return f"exit {run.returncode}: {run.stdout[-300:]!r} {run.stderr[-300:]!r}"

        # The container tools themselves must work, or every deny below would pass vacuously.
        tool = daemon.docker("exec", "dd1", "nc", "--help", check=False)
        report("docker: exec finds the image's tools", b"Usage: nc" in tool.stderr + tool.stdout, seen(tool))
        if policy_applied:
            ok, run = page("dw1", ip["dd1"], 5432, tries=3)
            report("docker: allow web -> db tcp/5432", ok, seen(run))
            got, run = exec_ping("dd1", ip["dw1"])
            report("docker: deny db -> web", not got and run.returncode == 1, seen(run))
            got, run = exec_ping("dw1", NODE_ADDRESS, tries=3)
            report("docker: web reaches its node", got, seen(run))
        else:
            got, run = page("dw1", ip["dd1"], 5432)
            report("fail closed: docker web -> db dropped without a policy", not got, seen(run))
        daemon.docker("rm", "-f", "dw1", "dd1", check=False)
        left = [e["ip"] for e in client.endpoints()]
        report("docker: no agent endpoints left", not left, left)
        slaves = [line for line in sh("ip", "-o", "link", "show", "type", "ipvlan").stdout.splitlines()
                  if "bplgn" not in line]
        report("docker: no container slaves left", not slaves, slaves)
        daemon.docker("network", "rm", "dweb", "ddb", check=False)
    finally:
        plugin.stop()
        daemon.stop()


def l3_part(client, agent_socket, group_of):
    """ipvlan l3 through the CNI plugin, in this same boot: policy and node reachability.

    Its own parent: an ipvlan port has one mode for all its slaves (a new slave's mode is the
    port's), so l3 slaves on PARENT would turn the l2 ones into l3 too.
    """
    from bayctl.node import cni

    sh("ip", "link", "add", L3_PARENT, "type", "dummy")
    sh("ip", "link", "set", L3_PARENT, "up")
    sh("ip", "addr", "add", f"{L3_NODE_ADDRESS}/24", "dev", L3_PARENT)
    subnets = (("web", "bplg-l3web", "10.79.0.0/24"), ("db", "bplg-l3db", "10.80.0.0/24"))
    nets = {group: {"cniVersion": "1.0.0", "name": name, "type": "bayctl-cni", "group": group_of[group],
                    "linkMode": "ipvlan-l3", "parent": L3_PARENT, "agentSocket": agent_socket,
                    "stateDir": "/tmp/cni-l3", "linkPrefix": "bplg",
                    "ipam": {"type": "bayctl", "subnet": subnet}}
            for group, name, subnet in subnets}
    boxes, holders, servers = {}, [], []
    try:
        for box, group in (("l3w1", "web"), ("l3w2", "web"), ("l3d1", "db")):
            added = cni_add(box, nets[group], holders, label="l3: ")
            if added is None:
                return
            netns, ip, result = added
            boxes[box] = (netns, ip, group, result)
        details = sh("nsenter", f"--net={boxes['l3w1'][0]}", "ip", "-d", "link", "show", "eth0").stdout
        report("l3: container has an ipvlan l3 slave", "ipvlan" in details and "mode l3 " in details, details)
        filters = sh("nsenter", f"--net={boxes['l3w1'][0]}", "tc", "filter", "show", "dev", "eth0",
                     "ingress").stdout
        report("l3: policy program attached in the container's namespace", "bpf" in filters, filters)
        w1, w2, d1 = boxes["l3w1"], boxes["l3w2"], boxes["l3d1"]
        servers = [subprocess.Popen(["nsenter", f"--net={b[0]}", "busybox", "httpd", "-f", "-p", port,
                                     "-h", WWW]) for b, port in ((d1, "5432"), (w1, "80"))]
        time.sleep(0.5)
        report("l3: allow web -> db tcp/5432", tcp_page(w1[0], d1[1], 5432, tries=3))
        report("l3: deny web -> db icmp", not echo_reply(w1[0], d1[1]))
        report("l3: deny db -> web tcp/80", not tcp_page(d1[0], w1[1], 80))
        report("l3: allow web <-> web (intra-group)",
               echo_reply(w2[0], w1[1], tries=3) and tcp_page(w2[0], w1[1], 80, tries=3))
        gateway = w1[3]["ips"][0]["gateway"]
        report("l3: web reaches its node at the gateway slave", echo_reply(w1[0], gateway, tries=3), gateway)
        report("l3: web reaches its node's own address on the parent",
               echo_reply(w1[0], L3_NODE_ADDRESS, tries=3))
        report("l3: deny db -> node (no db -> external rule)",
               not echo_reply(d1[0], d1[3]["ips"][0]["gateway"]) and not echo_reply(d1[0], L3_NODE_ADDRESS))
    finally:
        for server in servers:
            server.kill()
        statuses = []
        for box, (netns, _ip, group, _) in boxes.items():
            env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": box, "CNI_NETNS": netns, "CNI_IFNAME": "eth0"}
            statuses.append(cni.run(env, json.dumps(nets[group]))[1])
        report("l3: DEL every container", boxes and statuses == [0] * len(boxes), statuses)
        for holder in holders:
            holder.kill()
        left = [e["ip"] for e in client.endpoints()]
        report("l3: no agent endpoints left", not left, left)
        slaves = [line for line in sh("ip", "-o", "link", "show", "type", "ipvlan").stdout.splitlines()
                  if "bplgn" not in line]
        report("l3: no container slaves left", not slaves, slaves)


def cni_add(box, config, holders, label=""):
    """CNI ADD of one container as Mesos does it: into a namespace held by a process
    (/proc/PID/ns/net; the holder is appended to `holders` for the caller to kill).
    Returns (netns, ip, CNI result), or None after reporting a failed ADD."""
    from bayctl.node import cni

    holder = subprocess.Popen(["unshare", "--net", "sleep", "3600"])
    holders.append(holder)
    netns = f"/proc/{holder.pid}/ns/net"
    _wait_for_own_netns(netns)
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": box, "CNI_NETNS": netns, "CNI_IFNAME": "eth0",
           "CNI_PATH": ""}
    result, status = cni.run(env, json.dumps(config))
    report(f"{label}ADD {box}", status == 0, result)
    if status != 0:
        return None
    return netns, result["ips"][0]["address"].split("/")[0], result


def _wait_for_own_netns(netns):
    """unshare has switched namespaces once its net ns differs from ours."""
    mine = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if os.readlink(netns) != mine:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{netns} never became a namespace of its own")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        report("guest script", False, traceback.format_exc())
    report("done", True)

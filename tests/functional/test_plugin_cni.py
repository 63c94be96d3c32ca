"""The CNI plugin, invoked exactly as a runtime (Mesos' network/cni isolator) does it.

`bayctl-cni` runs with CNI_* in its environment and the network config on stdin, against
real network namespaces and the real node agent; its stdout is the CNI result or error JSON.
"""

import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from harness.fixtures_docker import Agent, host_links
from harness.fixtures_docker import _stop as stop_process
from harness.paths import REPO
from harness.prereq import require_tools
from harness.tree_cni import write_tree_cni

pytestmark = [pytest.mark.root]

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "bayctl", "share", "policies")
CNI_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins (host-local for delegation)


class Cni:
    def __init__(self, agent, root, tag):
        self.agent = agent
        self.state_dir = os.path.join(root, "cni-state")
        self.tag = tag
        self.netns = []
        self.networks = set()
        self.servers = []
        self.plugin = shutil.which("bayctl-cni")
        self.cni_path = os.path.dirname(self.plugin)

    def config(self, name, subnet, **extra):
        config = {"cniVersion": "1.0.0", "name": f"bplg-{self.tag}-{name}", "type": "bayctl-cni",
                  "agentSocket": self.agent.socket, "stateDir": self.state_dir, "linkPrefix": "bplg",
                  "ipam": {"type": "bayctl", "subnet": subnet}}
        config.update(extra)
        self.networks.add(config["name"])
        return config

    def make_netns(self, name):
        ns = f"bplg-{self.tag}-{name}"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        self.netns.append(ns)
        return f"/run/netns/{ns}"

    def call(self, command, config, netns="", container="", ifname="eth0", raw=None, env=None):
        environ = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": container,
                   "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_ARGS": "",
                   "CNI_PATH": os.pathsep.join([self.cni_path, CNI_DIR])}
        environ.update(env or {})
        stdin = raw if raw is not None else json.dumps(config)
        result = subprocess.run([self.plugin], input=stdin.encode(), capture_output=True, env=environ,
                                timeout=60)
        assert b"Traceback" not in result.stderr and b"Traceback" not in result.stdout
        out = json.loads(result.stdout) if result.stdout.strip() else None
        return result.returncode, out

    def add(self, config, name, **kw):
        netns = self.make_netns(name)
        code, result = self.call("ADD", config, netns=netns, container=f"{self.tag}-{name}", **kw)
        assert code == 0, result
        return netns, result

    def sh(self, netns, *argv, **kw):
        return subprocess.run(["nsenter", f"--net={netns}", "busybox", *argv], capture_output=True, **kw)

    def serve(self, netns, port):
        www = os.path.join(self.state_dir, "www")
        os.makedirs(www, exist_ok=True)
        server = subprocess.Popen(["nsenter", f"--net={netns}", "busybox", "httpd", "-f", "-p", str(port),
                                   "-h", www])
        self.servers.append(server)
        # Listening? Asked from inside its own namespace (over lo: no policy program on the way).
        deadline = time.monotonic() + 30
        while self.sh(netns, "nc", "-w", "1", "127.0.0.1", str(port), input=b"").returncode != 0:
            assert time.monotonic() < deadline, f"httpd on port {port} in {netns} never listened"
            time.sleep(0.1)

    def tcp(self, netns, ip, port, tries=1):
        return any(self.sh(netns, "nc", "-w", "1", ip, str(port), input=b"").returncode == 0
                   for _ in range(tries))

    def ping(self, netns, ip, tries=1):
        return any(self.sh(netns, "ping", "-c", "1", "-W", "1", ip).returncode == 0 for _ in range(tries))

    def cleanup(self):
        for server in self.servers:
            server.kill()
            server.wait()
        for ns in self.netns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        # The per-network bridges (the node side of each CNI network) of this session's networks.
        for name in self.networks:
            key = hashlib.sha256(name.encode()).hexdigest()
            subprocess.run(["ip", "link", "del", f"bplgn{key[:8]}"], capture_output=True)


@pytest.fixture
def cni(bplg_agent, bplg_root, bplg_tag):
    require_tools("bayctl-cni", "busybox", "nsenter", "ip")
    helper = Cni(bplg_agent, bplg_root, bplg_tag)
    yield helper
    helper.cleanup()


def ip_of(result):
    return result["ips"][0]["address"].split("/")[0]


def registered(agent):
    return {e["ip"]: e for e in agent.client().endpoints()}


def test_add_connects_namespaces_as_the_web_db_policy_says_then_check_and_del(cni, bplg_agent):
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    links_before = host_links()
    web = cni.config("web", "10.221.0.0/24", group="web")
    db = cni.config("db", "10.222.0.0/24", group="db")
    web1, r_web1 = cni.add(web, "w1")
    web2, r_web2 = cni.add(web, "w2")
    db1, r_db1 = cni.add(db, "d1")
    assert r_web1["cniVersion"] == "1.0.0" and r_web1["ips"][0]["gateway"] == "10.221.0.1"
    assert r_web1["interfaces"][r_web1["ips"][0]["interface"]]["sandbox"] == web1
    assert {registered(bplg_agent)[ip_of(r)]["group"] for r in (r_web1, r_web2)} == {"web"}
    assert registered(bplg_agent)[ip_of(r_db1)]["group"] == "db"

    cni.serve(db1, 5432)
    cni.serve(web1, 80)
    assert cni.tcp(web2, ip_of(r_db1), 5432, tries=3)       # web -> db:5432 allowed (routed by the node)
    assert not cni.ping(web2, ip_of(r_db1))                   # nothing else of db
    assert not cni.tcp(db1, ip_of(r_web1), 80)                # db -> web denied
    assert cni.ping(web2, ip_of(r_web1), tries=3)             # intra-group

    for netns, config, container, result in ((web1, web, "w1", r_web1), (db1, db, "d1", r_db1)):
        code, out = cni.call("CHECK", {**config, "prevResult": result}, netns=netns,
                             container=f"{cni.tag}-{container}")
        assert (code, out) == (0, None)

    for netns, config, container in ((web1, web, "w1"), (web2, web, "w2"), (db1, db, "d1")):
        for _ in range(2):  # DEL is idempotent
            code, out = cni.call("DEL", config, netns=netns, container=f"{cni.tag}-{container}")
            assert (code, out) == (0, None)
    assert not {ip_of(r) for r in (r_web1, r_web2, r_db1)} & set(registered(bplg_agent))
    # only the per-network bridges stay (they are the node side of the network, like Docker's)
    assert {link for link in host_links() - links_before if not link.startswith("bplgn")} == set()
    with open(os.path.join(cni.state_dir, "ipam.json")) as f:
        pools = json.load(f)["pools"]
    assert pools["10.221.0.0/24"]["addresses"] == {"10.221.0.1": "gateway"}


def test_check_reports_a_broken_interface_as_cni_error(cni, bplg_agent):
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    config = cni.config("chk", "10.223.0.0/24", group="web")
    netns, result = cni.add(config, "chk1")
    subprocess.run(["nsenter", f"--net={netns}", "ip", "addr", "flush", "dev", "eth0"], check=True)
    code, out = cni.call("CHECK", {**config, "prevResult": result}, netns=netns, container=f"{cni.tag}-chk1")
    assert code != 0 and out["code"] == 102 and "lacks address" in out["msg"]
    assert cni.call("DEL", config, netns=netns, container=f"{cni.tag}-chk1")[0] == 0


def test_del_after_the_namespace_is_gone_succeeds_and_frees_everything(cni, bplg_agent):
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    config = cni.config("web", "10.221.0.0/24", group="web")
    before = host_links()
    netns, result = cni.add(config, "gone")
    subprocess.run(["ip", "netns", "del", os.path.basename(netns)], check=True)
    code, out = cni.call("DEL", config, netns=netns, container=f"{cni.tag}-gone")
    assert (code, out) == (0, None)
    assert ip_of(result) not in registered(bplg_agent)
    # (veth names are the prefix + hex digits; "bplgn..." are the networks' bridges)
    assert {link for link in host_links() - before if not link.startswith("bplgn")} == set()


def test_group_from_mesos_network_info_labels(cni, bplg_agent):
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    args = {"org.apache.mesos": {"network_info": {"name": "bplg-lbl", "labels": {
        "labels": [{"key": "rack", "value": "r1"}, {"key": "bayctl.group", "value": "db"}]}}}}
    config = cni.config("lbl", "10.224.0.0/24", group="web", args=args)
    netns, result = cni.add(config, "lbl1")
    assert registered(bplg_agent)[ip_of(result)]["group"] == "db"
    check = {**config, "prevResult": result}
    assert cni.call("CHECK", check, netns=netns, container=f"{cni.tag}-lbl1")[0] == 0
    assert cni.call("DEL", config, netns=netns, container=f"{cni.tag}-lbl1")[0] == 0


def test_delegated_ipam_host_local(cni, bplg_agent, bplg_root):
    require_tools(os.path.join(CNI_DIR, "host-local"))
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    data_dir = os.path.join(bplg_root, "host-local")
    config = cni.config("hl", "unused", group="web")
    config["ipam"] = {"type": "host-local", "dataDir": data_dir,
                      "ranges": [[{"subnet": "10.225.0.0/24", "gateway": "10.225.0.1"}]]}
    netns, result = cni.add(config, "hl1")
    assert ip_of(result).startswith("10.225.0.")
    assert registered(bplg_agent)[ip_of(result)]["group"] == "web"
    held = os.listdir(os.path.join(data_dir, config["name"]))
    assert ip_of(result) in held
    code, _ = cni.call("DEL", {**config, "prevResult": result}, netns=netns, container=f"{cni.tag}-hl1")
    assert code == 0
    assert ip_of(result) not in os.listdir(os.path.join(data_dir, config["name"]))
    assert ip_of(result) not in registered(bplg_agent)


def test_concurrent_adds_in_separate_processes_never_share_an_address(cni, bplg_agent):
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    config = cni.config("many", "10.226.0.0/24", group="web")
    spaces = [cni.make_netns(f"m{i}") for i in range(20)]

    def add(i):
        return cni.call("ADD", config, netns=spaces[i], container=f"{cni.tag}-m{i}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(add, range(20)))
    assert all(code == 0 for code, _ in results), results
    ips = [ip_of(r) for _, r in results]
    assert len(set(ips)) == 20
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(
            lambda i: cni.call("DEL", config, netns=spaces[i], container=f"{cni.tag}-m{i}")[0], range(20)))
    assert codes == [0] * 20
    assert not set(ips) & set(registered(bplg_agent))


@pytest.mark.parametrize("case, env, raw, code, words", [
    ("not json", {}, "{not json", 6, "not JSON"),
    ("bad version", {}, '{"cniVersion": "9.9.9", "name": "x", "type": "bayctl-cni"}', 1, "not supported"),
    ("no version", {}, '{"name": "x", "type": "bayctl-cni"}', 7, "'cniVersion' is required"),
    ("unknown key", {}, None, 7, "unknown key 'grup'"),
    ("no netns", {"CNI_NETNS": ""}, None, 4, "CNI_NETNS is not set"),
    ("no such netns", {"CNI_NETNS": "/run/netns/bplg-does-not-exist"}, None, 3, "does not exist"),
    ("bad command", {"CNI_COMMAND": "FROB"}, None, 4, "CNI_COMMAND"),
    ("bad subnet", {}, "subnet", 7, "ipam.subnet"),
    ("unknown group", {}, "group", 7, "group 'nosuch' is not in the node's policy"),
    # A tag is checked against the datapath's range as the Docker driver checks it (attach.py),
    # before any address or link: it was let through and failed at the agent as a link failure.
    ("tag out of range", {}, "tag", 7, "group tag 70000 is out of range 1-65535"),
    ("bad agent timeout", {}, "agentTimeout", 7, "agentTimeout 'soon' must be a number of seconds"),
])
def test_bad_input_gives_cni_error_json_never_a_traceback(cni, bplg_agent, case, env, raw, code, words):
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    config = cni.config("web", "10.221.0.0/24", group="web")
    if case == "unknown key":
        config["grup"] = "web"
    if raw == "subnet":
        config["ipam"]["subnet"] = "10.221.0.7/24"
        raw = None
    if raw == "group":
        config["group"] = "nosuch"
        raw = None
    if raw == "tag":
        config["group"] = 70000
        raw = None
    if raw == "agentTimeout":
        config["agentTimeout"] = "soon"
        raw = None
    netns = "" if "CNI_NETNS" in env else cni.make_netns(f"bad{abs(hash(case)) % 1000}")
    status, out = cni.call("ADD", config, netns=env.get("CNI_NETNS", netns), container=f"{cni.tag}-bad",
                           raw=raw, env={k: v for k, v in env.items() if k != "CNI_NETNS"})
    assert status != 0
    assert out["code"] == code and words in out["msg"], out
    assert set(out) == {"cniVersion", "code", "msg", "details"}


def test_version_lists_the_supported_spec_versions(cni):
    code, out = cni.call("VERSION", None, raw="")
    assert code == 0 and "1.0.0" in out["supportedVersions"] and out["cniVersion"] == "1.1.0"


def test_example_conflist_is_a_valid_bayctl_config(cni, bplg_agent):
    """The shipped example, with only the node-specific paths changed, passes ADD and DEL."""
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    with open(os.path.join(EXAMPLES, "cni", "bayctl-web.conflist")) as f:
        conflist = json.load(f)
    plugin = dict(conflist["plugins"][0], cniVersion=conflist["cniVersion"], name=conflist["name"])
    plugin.update(agentSocket=cni.agent.socket, stateDir=cni.state_dir, linkPrefix="bplg")
    plugin["ipam"] = dict(plugin["ipam"], subnet="10.227.0.0/24", gateway="10.227.0.1")
    plugin["name"] = f"bplg-{cni.tag}-web"
    cni.networks.add(plugin["name"])
    # As libcni does: runtimeConfig carries only what the config declares in `capabilities`
    # (podman run --ip is the `ips` capability; undeclared, the address would be dropped).
    wanted = {"ips": ["10.227.0.77/24"]}
    plugin["runtimeConfig"] = {k: v for k, v in wanted.items() if plugin.get("capabilities", {}).get(k)}
    netns, result = cni.add(plugin, "ex1")
    assert ip_of(result) == "10.227.0.77", result
    assert registered(bplg_agent)[ip_of(result)]["group"] == "web"
    assert cni.call("DEL", plugin, netns=netns, container=f"{cni.tag}-ex1")[0] == 0


# -- DEL without the agent, GC, fixed addresses (issue 11 §3) --------------------------------------
# These run the plugin through tree_cni's wrapper: this tree's code, whatever PATH holds.

@pytest.fixture
def own_cni(bplg_agent, bplg_root, bplg_tag):
    require_tools("busybox", "nsenter", "ip")
    helper = Cni(bplg_agent, bplg_root, bplg_tag)
    helper.plugin = write_tree_cni(os.path.join(bplg_root, "tree-cni"))
    helper.cni_path = os.path.dirname(helper.plugin)
    yield helper
    helper.cleanup()


def ipam_owners(cni, subnet):
    with open(os.path.join(cni.state_dir, "ipam.json")) as f:
        return json.load(f)["pools"].get(subnet, {}).get("addresses", {})


def node_ends(result):
    """This attachment's links in the node's namespace (another run's links are none of ours)."""
    return {i["name"] for i in result["interfaces"] if "sandbox" not in i}


def call_logged(cni, command, config, **kw):
    """Like Cni.call, with the plugin's stderr too (what it logs for the runtime)."""
    environ = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": kw.get("container", ""),
               "CNI_NETNS": kw.get("netns", ""), "CNI_IFNAME": "eth0", "CNI_ARGS": kw.get("args", ""),
               "CNI_PATH": os.pathsep.join([cni.cni_path, CNI_DIR])}
    done = subprocess.run([cni.plugin], input=json.dumps(config).encode(), capture_output=True, env=environ,
                          timeout=60)
    assert b"Traceback" not in done.stderr + done.stdout
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr.decode()


def test_del_with_the_agent_down_frees_address_and_link_and_the_agent_forgets_the_endpoint(
        own_cni, bplg_root, bplg_tag):
    agent = Agent(os.path.join(bplg_root, "down-agent"), f"{bplg_tag}d")
    os.makedirs(os.path.dirname(agent.socket), exist_ok=True)
    agent.start()
    try:
        agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
        config = own_cni.config("down", "10.224.0.0/24", group="web", agentSocket=agent.socket)
        netns, result = own_cni.add(config, "down1")
        assert node_ends(result) and node_ends(result) <= host_links()
        ip = ip_of(result)
        assert ipam_owners(own_cni, "10.224.0.0/24")[ip] == f"{own_cni.tag}-down1/eth0"
        assert ip in registered(agent)
        stop_process(agent.process)  # the agent is down; its pins (enforcement) stay
        code, out, log = call_logged(own_cni, "DEL", config, netns=netns, container=f"{own_cni.tag}-down1")
        assert (code, out) == (0, None)
        assert "node agent not told to remove " + ip in log
        assert ip not in ipam_owners(own_cni, "10.224.0.0/24")
        assert node_ends(result) & host_links() == set()
        # Back up: the agent drops the endpoint whose interface is gone (the agent-http branch).
        agent.start()
        assert ip not in registered(agent)
    finally:
        agent.stop()


def test_a_hung_agent_bounds_the_runtimes_wait_add_says_try_again_del_frees_everything(
        own_cni, bplg_root, bplg_tag):
    """An agent that takes the connection and never answers (SIGSTOP: its socket still accepts):
    ADD answers CNI error 11 (try again later) after the network's agentTimeout instead of
    hanging the runtime, and DEL frees the address and the links itself, asking the agent no
    longer than that; the agent, resumed, does none of the calls whose callers gave up, and
    drops the endpoint whose interface is gone."""
    agent = Agent(os.path.join(bplg_root, "hung-agent"), f"{bplg_tag}h")
    os.makedirs(os.path.dirname(agent.socket), exist_ok=True)
    agent.start()
    try:
        agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
        config = own_cni.config("hung", "10.225.0.0/24", group="web", agentSocket=agent.socket,
                                agentTimeout=2)
        netns, result = own_cni.add(config, "hung1")
        ip = ip_of(result)
        assert ip in registered(agent)
        held = ipam_owners(own_cni, "10.225.0.0/24")   # hung1's address and the network's gateway
        os.kill(agent.process.pid, signal.SIGSTOP)
        try:
            code, out, _log = call_logged(own_cni, "ADD", config, netns=own_cni.make_netns("hung2"),
                                          container=f"{own_cni.tag}-hung2")
            assert code == 1 and out["code"] == 11, out
            assert f"the node agent at {agent.socket} did not answer within 2s" in out["msg"]
            assert ipam_owners(own_cni, "10.225.0.0/24") == held   # nothing taken for hung2
            code, out, log = call_logged(own_cni, "DEL", config, netns=netns,
                                         container=f"{own_cni.tag}-hung1")
            assert (code, out) == (0, None)
            assert "node agent not told to remove " + ip in log
            assert ip not in ipam_owners(own_cni, "10.225.0.0/24")
            assert node_ends(result) & host_links() == set()
        finally:
            os.kill(agent.process.pid, signal.SIGCONT)
        # Resumed, the agent finds the calls it was sent while stopped, whose callers gave up:
        # it does none of them (no hung2 endpoint, address or link), and lets hung1 go, whose
        # interface is gone.
        endpoints = registered(agent)
        assert ip not in endpoints and not [e for e in endpoints.values() if e["ip"].startswith("10.225.")]
        assert set(ipam_owners(own_cni, "10.225.0.0/24")) == set(held) - {ip}
    finally:
        agent.stop()


def test_gc_releases_addresses_and_links_of_attachments_not_in_the_valid_list(own_cni, bplg_agent):
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    config = own_cni.config("gc", "10.225.0.0/24", group="web")
    kept_ns, kept = own_cni.add(config, "keep")
    gone_ns, gone = own_cni.add(config, "gone")
    subprocess.run(["ip", "netns", "del", os.path.basename(gone_ns)], check=True)  # the runtime lost it
    valid = [{"containerID": f"{own_cni.tag}-keep", "ifname": "eth0"}]
    code, out, log = call_logged(own_cni, "GC", {**config, "cniVersion": "1.1.0",
                                                 "cni.dev/valid-attachments": valid})
    assert (code, out) == (0, None), log
    # What GC did, on the plugin's stderr for the runtime (also when the agent ran the call).
    assert f"GC: released {ip_of(gone)} of {own_cni.tag}-gone/eth0" in log
    owners = ipam_owners(own_cni, "10.225.0.0/24")
    assert ip_of(gone) not in owners and owners[ip_of(kept)] == f"{own_cni.tag}-keep/eth0"
    assert ip_of(gone) not in registered(bplg_agent) and ip_of(kept) in registered(bplg_agent)
    # Only the kept attachment's node end is left.
    assert node_ends(kept) <= host_links() and node_ends(gone) & host_links() == set()
    # Without the list GC releases nothing (fail closed).
    code, out, _ = call_logged(own_cni, "GC", {**config, "cniVersion": "1.1.0"})
    assert code == 1 and out["code"] == 7 and "valid-attachments" in out["msg"]
    assert ip_of(kept) in ipam_owners(own_cni, "10.225.0.0/24")
    assert own_cni.call("DEL", config, netns=kept_ns, container=f"{own_cni.tag}-keep")[0] == 0


@pytest.mark.parametrize("how", ["runtimeConfig", "CNI_ARGS"])
def test_a_requested_address_is_given_if_free_and_refused_if_taken_or_outside(own_cni, bplg_agent, how):
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    subnet = "10.226.0.0/24" if how == "runtimeConfig" else "10.227.0.0/24"
    config = own_cni.config(f"ip{how[:3]}", subnet, group="db")
    base = subnet.rsplit(".", 2)[0]

    def add(name, address):
        netns = own_cni.make_netns(name)
        if how == "runtimeConfig":
            cfg, args = {**config, "runtimeConfig": {"ips": [f"{address}/24"]}}, ""
        else:
            cfg, args = config, f"IgnoreUnknown=1;IP={address}"
        container = f"{own_cni.tag}-{name}"
        code, out, _ = call_logged(own_cni, "ADD", cfg, netns=netns, container=container, args=args)
        return netns, code, out

    netns, code, out = add("fixed", f"{base}.0.77")
    assert code == 0 and out["ips"][0]["address"] == f"{base}.0.77/24", out
    assert ipam_owners(own_cni, subnet)[f"{base}.0.77"] == f"{own_cni.tag}-fixed/eth0"
    seen = subprocess.run(["nsenter", f"--net={netns}", "ip", "-4", "-o", "addr", "show", "eth0"],
                          capture_output=True, text=True, check=True).stdout
    assert f"{base}.0.77/24" in seen
    _, code, out = add("taken", f"{base}.0.77")
    assert code == 1 and out["code"] == 7 and f"{base}.0.77 is already in use" in out["msg"], out
    _, code, out = add("outside", "10.9.9.9")
    assert code == 1 and out["code"] == 7 and "not a host address" in out["msg"], out
    # Nothing was reserved for the refused ones.
    assert sorted(ipam_owners(own_cni, subnet).values()) == sorted(["gateway", f"{own_cni.tag}-fixed/eth0"])
    assert own_cni.call("DEL", config, netns=netns, container=f"{own_cni.tag}-fixed")[0] == 0


# -- the node agent runs the calls (node/cni_service.py): each plugin process stays cheap --------

HEAVY = ("pyroute2", "yaml", "bayctl.policy.compiler", "bayctl.node.links", "bayctl.node.ipam")


def traced_call(cni, command, config, netns, container, wrap=()):
    """Call this tree's plugin as the runtime does; also which HEAVY modules its process loaded."""
    code = ("import atexit, json, os, sys\n"
            f"heavy = lambda: [m for m in {HEAVY!r} if m in sys.modules]\n"
            "atexit.register(lambda: os.write(2, ('\\nHEAVY=' + json.dumps(heavy())).encode()))\n"
            f"sys.path.insert(0, {REPO!r})\n"
            "from bayctl.node.cni import main\nsys.exit(main())")
    environ = {"PATH": os.environ["PATH"], "CNI_COMMAND": command, "CNI_CONTAINERID": container,
               "CNI_NETNS": netns, "CNI_IFNAME": "eth0", "CNI_ARGS": "",
               "CNI_PATH": os.pathsep.join([cni.cni_path, CNI_DIR])}
    done = subprocess.run([*wrap, sys.executable, "-I", "-c", code], input=json.dumps(config).encode(),
                          capture_output=True, env=environ, timeout=60)
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr + done.stdout.decode()
    heavy = json.loads(stderr.rsplit("HEAVY=", 1)[1])
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, heavy


def test_the_agent_runs_add_and_del_so_the_plugin_loads_no_netlink_yaml_or_ipam(cni, bplg_agent):
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    config = cni.config("thin", "10.226.0.0/24", group="web")
    netns = cni.make_netns("thin1")
    container = f"{cni.tag}-thin1"
    code, result, heavy = traced_call(cni, "ADD", config, netns, container)
    assert code == 0, result
    assert heavy == []  # the links, the address and the registration were made by the agent
    ip = ip_of(result)
    assert result["ips"][0]["address"].startswith("10.226.0.")
    assert result["interfaces"][-1]["sandbox"] == netns
    seen = subprocess.run(["nsenter", f"--net={netns}", "ip", "-4", "-o", "addr", "show", "eth0"],
                          capture_output=True, text=True, check=True).stdout
    assert f" {result['ips'][0]['address']} " in seen  # placed and addressed in the container's namespace
    assert node_ends(result) <= host_links()
    assert registered(bplg_agent)[ip]["group"] == "web"
    code, out, heavy = traced_call(cni, "DEL", config, netns, container)
    assert (code, out, heavy) == (0, None, [])
    assert ip not in registered(bplg_agent)
    assert node_ends(result) & host_links() == set()


def test_a_plugin_in_another_mount_namespace_than_the_agent_does_the_call_itself(cni, bplg_agent):
    require_tools("unshare")
    bplg_agent.apply(os.path.join(EXAMPLES, "web-db.yaml"))
    config = cni.config("own", "10.227.0.0/24", group="web")
    netns = cni.make_netns("own1")
    container = f"{cni.tag}-own1"
    elsewhere = ("unshare", "--mount")  # same network namespace, another mount table
    code, result, heavy = traced_call(cni, "ADD", config, netns, container, wrap=elsewhere)
    assert code == 0, result
    assert "pyroute2" in heavy  # the agent refused the call (409): the plugin made the links itself
    ip = ip_of(result)
    assert node_ends(result) <= host_links() and registered(bplg_agent)[ip]["group"] == "web"
    code, out, heavy = traced_call(cni, "DEL", config, netns, container, wrap=elsewhere)
    assert (code, out) == (0, None) and "pyroute2" in heavy
    assert ip not in registered(bplg_agent)


def test_concurrent_calls_in_one_process_probe_ipvlan_once_and_all_get_the_answer(cni):
    # The agent runs many calls at once on its threads: the first ADDs of a network all ask
    # whether the kernel has ipvlan; probes by one process share a link name, so only one may run.
    script = f"""
import concurrent.futures, json, subprocess, sys
sys.path.insert(0, {REPO!r})
from bayctl.node import links
from bayctl.node.netns import run_in_netns
def burst():
    subprocess.run(["ip", "link", "add", "bplgparent", "type", "veth", "peer", "name", "bplgpeer"],
                   check=True)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(links.ipvlan_supported, "bplgparent") for _ in range(16)]
    answers = []
    for future in futures:
        try:
            answers.append(future.result())
        except Exception as e:
            answers.append(str(e))
    return answers
print(json.dumps(run_in_netns(sys.argv[1], burst)))
"""
    netns = cni.make_netns("probe")
    done = subprocess.run(["nsenter", f"--net={netns}", sys.executable, "-I", "-c", script, netns],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert len(set(map(str, answers))) == 1 and isinstance(answers[0], bool), answers

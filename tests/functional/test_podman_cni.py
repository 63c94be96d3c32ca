"""bayctl-cni under a real runtime: Debian's podman 4.3 with its CNI backend.

Everything podman uses is private to the test: containers.conf (CONTAINERS_CONF), storage.conf
(graph root, run root, vfs), the CNI config dir and plugin dir (this tree's plugin through
tree_cni's wrapper, and the reference `loopback`), and a busybox image imported from
busybox-static (nothing is pulled). One real agent with the web-db policy; containers on the
networks web, db and other (tag 300: named by no rule) are probed from inside each other
against the policy, with a reply read back on every allowed pair.
"""

import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import tempfile

import pytest
from harness.fixtures_docker import Agent, host_links
from harness.fixtures_docker import _stop as stop_process
from harness.prereq import require, require_root, require_tools
from harness.tree_cni import write_tree_cni

from bayctl.node import links

pytestmark = [pytest.mark.root, pytest.mark.podman]

POLICY = os.path.join(os.path.dirname(__file__), "..", "..", "bayctl", "share", "policies", "web-db.yaml")
REFERENCE_PLUGINS = "/usr/lib/cni"  # Debian's containernetworking-plugins: loopback
GROUPS = {"web": "web", "db": "db", "other": 300}  # network -> group (300: a tag named by no rule)
LINK_PREFIX = "bpod"


class Podman:
    def __init__(self, root, tag):
        self.root, self.tag = root, tag
        self.agent = Agent(root, tag)
        self.cni_config_dir = os.path.join(root, "cni-config")
        self.cni_state = os.path.join(root, "cni-state")
        self.conf = os.path.join(root, "containers.conf")
        self.storage_conf = os.path.join(root, "storage.conf")
        self.env = dict(os.environ, CONTAINERS_CONF=self.conf, CONTAINERS_STORAGE_CONF=self.storage_conf)
        self.image = f"localhost/bpod{tag}:latest"
        # Subnets of this run's own (a run from another worktree may be up at the same time,
        # and every network's gateway lives in the node's namespace).
        block = int(tag, 16) % 250
        self.subnets = {short: f"10.{241 + i}.{block}.0/24" for i, short in enumerate(GROUPS)}

    def address(self, short, host):
        return str(ipaddress.ip_network(self.subnets[short])[host])

    def write_config(self):
        plugin_dir = os.path.dirname(write_tree_cni(os.path.join(self.root, "cni-bin")))
        shutil.copy(os.path.join(REFERENCE_PLUGINS, "loopback"), plugin_dir)
        os.makedirs(self.cni_config_dir)
        # No CAP_SYS_RESOURCE here: rlimits with soft = hard below the current limits (PLATFORM.md).
        with open(self.conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n'
                    f'[network]\nnetwork_backend = "cni"\ncni_plugin_dirs = ["{plugin_dir}"]\n'
                    f'network_config_dir = "{self.cni_config_dir}"\n'
                    f'[engine]\nruntime = "runc"\ntmp_dir = "{os.path.join(self.root, "tmp")}"\n')
        with open(self.storage_conf, "w") as f:
            f.write(f'[storage]\ndriver = "vfs"\ngraphroot = "{os.path.join(self.root, "graph")}"\n'
                    f'runroot = "{os.path.join(self.root, "run")}"\n')
        for short, group in GROUPS.items():
            subnet = self.subnets[short]
            conflist = {"cniVersion": "1.0.0", "name": self.network(short), "plugins": [
                {"type": "bayctl-cni", "group": group, "agentSocket": self.agent.socket,
                 "stateDir": self.cni_state, "linkPrefix": LINK_PREFIX, "capabilities": {"ips": True},
                 "ipam": {"type": "bayctl", "subnet": subnet}}]}
            with open(os.path.join(self.cni_config_dir, f"{self.network(short)}.conflist"), "w") as f:
                json.dump(conflist, f)

    def network(self, short):
        return f"bpod-{self.tag}-{short}"

    def import_busybox(self):
        rootfs = os.path.join(self.root, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        busybox = os.path.join(rootfs, "bin", "busybox")
        shutil.copy(shutil.which("busybox"), busybox)
        applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout
        for applet in applets.split():
            if applet != "busybox":
                os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True).stdout
        self.run("import", "-c", 'CMD ["/bin/sh"]', "-", self.image, input=tar)

    def run(self, *argv, check=True, input=None):
        done = subprocess.run(["podman", *argv], capture_output=True, env=self.env, input=input, timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(argv[:4])}: {done.stderr.decode(errors='replace')}")
        return done

    def start(self, name, short, *command, ip=None, check=True):
        argv = ["run", "-d", "--name", f"bpod{self.tag}-{name}", "--hostname", name,
                "--network", self.network(short)]
        if ip:
            argv += ["--ip", ip]
        return self.run(*argv, self.image, *command, check=check)

    def container_id(self, name):
        return self.run("inspect", "-f", "{{.Id}}", f"bpod{self.tag}-{name}").stdout.decode().strip()

    def ip_of(self, name):
        out = self.run("exec", f"bpod{self.tag}-{name}", "ip", "-4", "-o", "addr", "show", "eth0")
        out = out.stdout.decode()
        return out.split(" inet ")[1].split("/")[0]

    def fetch(self, client, ip, port):
        """What the server at ip:port answers (its hostname), or None when nothing came back."""
        # nc, not wget: busybox-static's wget dies of SIGSEGV in a container with no NSS files.
        done = self.run("exec", "-i", f"bpod{self.tag}-{client}", "nc", "-w", "2", ip, str(port),
                        input=b"GET /hostname HTTP/1.0\r\n\r\n", check=False)
        head, _, body = done.stdout.decode(errors="replace").partition("\r\n\r\n")
        return body.strip() if done.returncode == 0 and head.startswith("HTTP/1.1 200") else None

    def owners(self, subnet):
        with open(os.path.join(self.cni_state, "ipam.json")) as f:
            return json.load(f)["pools"].get(subnet, {}).get("addresses", {})

    def endpoints(self):
        return {e["ip"] for e in self.agent.client().endpoints()}

    def cleanup(self):
        self.run("rm", "-a", "-f", "-t", "0", check=False)
        self.run("rmi", "-a", "-f", check=False)
        self.agent.stop()
        for short in GROUPS:
            network_key = hashlib.sha256(self.network(short).encode()).hexdigest()
            subprocess.run(["ip", "link", "del", links.LinkNames(LINK_PREFIX, network_key).network],
                           capture_output=True)


@pytest.fixture(scope="module")
def podman():
    require_root()
    require_tools("podman", "runc", "busybox", "tar")
    require(os.path.isdir(REFERENCE_PLUGINS), f"needs {REFERENCE_PLUGINS} (containernetworking-plugins)")
    tag = secrets.token_hex(3)
    root = tempfile.mkdtemp(prefix="bpod-", dir="/var/tmp")  # vfs layers: not the tmpfs /tmp
    lab = Podman(root, tag)
    try:
        lab.write_config()
        lab.agent.start()
        lab.agent.apply(POLICY)
        lab.import_busybox()
        yield lab
    finally:
        lab.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def test_podman_containers_reach_each_other_as_the_web_db_policy_says(podman):
    # Each container serves its own hostname on the ports the policy names (and one it does not).
    servers = (("w1", "web", 80), ("w2", "web", 80), ("d1", "db", 5432), ("o1", "other", 5432))
    for name, short, port in servers:
        podman.start(name, short, "httpd", "-f", "-p", str(port), "-h", "/etc")
    ip = {name: podman.ip_of(name) for name in ("w1", "w2", "d1", "o1")}
    for name, ipaddr in ip.items():
        assert ipaddr in podman.endpoints(), f"{name}'s {ipaddr} is not registered with the agent"
    expected = [
        ("w1", "d1", 5432, True),    # web -> db on 5432: the rule; the reply (d1's hostname) comes back
        ("w1", "w2", 80, True),      # intraGroup: allow
        ("d1", "w1", 80, False),     # db -> web: no rule
        ("o1", "d1", 5432, False),   # other (tag 300) is in no rule
        ("w1", "o1", 5432, False),
        ("o1", "w1", 80, False),     # other is a group, not external: external -> web does not apply
    ]
    seen = [(client, server, port, podman.fetch(client, ip[server], port))
            for client, server, port, _ in expected]
    wrong = [(c, s, p, got) for (c, s, p, allow), (_, _, _, got) in zip(expected, seen)
             if got != (s if allow else None)]
    assert wrong == [], f"probes that disagree with web-db (client, server, port, answer): {wrong}"


def test_podman_ip_is_given_when_free_and_refused_when_taken_or_outside(podman):
    fixed, beyond = podman.address("db", 77), podman.address("web", 5)
    podman.start("fixed", "db", "sleep", "600", ip=fixed)
    assert podman.ip_of("fixed") == fixed
    assert podman.owners(podman.subnets["db"])[fixed] == f"{podman.container_id('fixed')}/eth0"
    taken = podman.start("taken", "db", "sleep", "600", ip=fixed, check=False)
    assert taken.returncode != 0 and f"{fixed} is already in use".encode() in taken.stderr, taken.stderr
    # Outside the network's subnet: refused, naming the address.
    outside = podman.start("outside", "db", "sleep", "600", ip=beyond, check=False)
    assert outside.returncode != 0 and beyond.encode() in outside.stderr, outside.stderr
    owners = podman.owners(podman.subnets["db"])
    fixed_owner = f"{podman.container_id('fixed')}/eth0"
    assert beyond not in owners and list(owners.values()).count(fixed_owner) == 1
    podman.run("rm", "-f", "-t", "0", f"bpod{podman.tag}-taken", f"bpod{podman.tag}-outside", check=False)


def test_podman_rm_with_the_agent_down_frees_the_address_and_the_link(podman):
    podman.start("gone", "web", "sleep", "600")
    ip, container = podman.ip_of("gone"), podman.container_id("gone")
    node_end = links.LinkNames(LINK_PREFIX, hashlib.sha256(f"{container}/eth0".encode()).hexdigest()).host
    assert node_end in host_links(LINK_PREFIX) and ip in podman.endpoints()
    stop_process(podman.agent.process)  # the agent is down (its pins, and enforcement, stay)
    try:
        podman.run("rm", "-f", "-t", "0", f"bpod{podman.tag}-gone")  # podman never retries a failed DEL
        assert ip not in podman.owners(podman.subnets["web"])
        assert node_end not in host_links(LINK_PREFIX)
    finally:
        podman.agent.start()
    # The agent, back, drops the endpoint whose interface is gone (the agent-http branch).
    assert ip not in podman.endpoints()
    # The address is free: a new container may have it.
    podman.start("again", "web", "sleep", "600", ip=ip)
    assert podman.ip_of("again") == ip

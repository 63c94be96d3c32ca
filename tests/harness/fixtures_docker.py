"""Session fixtures for the Docker and CNI plugin tests: a real dockerd, a real node agent, the plugin.

Everything is private to one test session and carries the "bplg" prefix: dockerd has its own
--data-root/--exec-root/socket/pidfile under a temporary directory (and starts its own
containerd there), the agent its own socket, state dir and bpffs pin dir, and the plugin a
unique name (dockerd discovers plugins in /run/docker/plugins, shared by everyone).
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from harness.prereq import require, require_root, require_tools

IMAGE = "bayctl-bb:latest"
LINK_PREFIX = "bplg"
PLUGIN_DIR = "/run/docker/plugins"


def _wait_for(predicate, what, timeout=30.0, process=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.05)
    detail = ""
    if log and os.path.exists(log):
        with open(log, errors="replace") as f:
            detail = "\n" + "".join(f.readlines()[-20:])
    raise RuntimeError(f"{what} did not come up{detail}")


def _stop(process, timeout=20.0):
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


class Dockerd:
    """A private dockerd (vfs storage, no iptables, no default bridge)."""

    def __init__(self, root):
        self.root = root
        self.socket = os.path.join(root, "docker.sock")
        self.log = os.path.join(root, "dockerd.log")
        self.process = None
        self.start_timeout = 60.0  # the qemu tier (software emulation) needs longer

    def start(self):
        command = [
            "dockerd", "--iptables=false", "--ip6tables=false", "--storage-driver=vfs", "--bridge=none",
            "--data-root", os.path.join(self.root, "data"), "--exec-root", os.path.join(self.root, "exec"),
            "--pidfile", os.path.join(self.root, "docker.pid"), "-H", f"unix://{self.socket}",
        ]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        _wait_for(lambda: self.docker("version", check=False).returncode == 0, "dockerd",
                  timeout=self.start_timeout, process=self.process, log=self.log)

    def docker(self, *args, check=True, input=None, timeout=120):
        result = subprocess.run(["docker", "-H", f"unix://{self.socket}", *args], input=input,
                                capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.decode(errors='replace')}")
        return result

    def out(self, *args, **kwargs):
        return self.docker(*args, **kwargs).stdout.decode().strip()

    def import_busybox_image(self):
        rootfs = os.path.join(self.root, "rootfs")
        os.makedirs(os.path.join(rootfs, "bin"))
        for d in ("etc", "tmp", "proc", "sys", "dev", "www"):
            os.makedirs(os.path.join(rootfs, d))
        shutil.copy(shutil.which("busybox"), os.path.join(rootfs, "bin", "busybox"))
        applets = subprocess.run([shutil.which("busybox"), "--list"], capture_output=True, text=True,
                                 check=True).stdout.split()
        for applet in applets:
            if applet != "busybox":
                os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        with open(os.path.join(rootfs, "www", "index.html"), "w") as f:
            f.write("bplg\n")
        tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True).stdout
        self.docker("import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV PATH=/bin", "-", IMAGE, input=tar)

    def stop(self):
        if self.process is None:
            return
        with contextlib.suppress(Exception):
            ids = self.out("ps", "-aq").split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
        _stop(self.process, timeout=30)


class Agent:
    """A node agent (the product's AgentProcess) with its own socket, state dir and pin dir."""

    def __init__(self, root, tag):
        from bayctl.node.agent_process import AgentProcess

        self.socket = os.path.join(root, "agent.sock")
        self.pin_dir = f"/sys/fs/bpf/bplg-{tag}"
        self.runner = AgentProcess(self.socket, self.pin_dir, os.path.join(root, "agent-state"),
                                   log_path=os.path.join(root, "agent.log"))

    @property
    def process(self):
        """The agent's Popen (tests stop it directly to take the agent down)."""
        return self.runner.process

    def start(self):
        self.runner.start()

    def client(self):
        from bayctl.node.client import AgentClient

        return AgentClient(self.socket, timeout=30)

    def apply(self, policy_path):
        with open(policy_path) as f:
            return self.client().apply_policy(f.read(), source=policy_path)

    def stop(self):
        self.runner.close()
        with contextlib.suppress(Exception):
            from bayctl.node.datapath import Datapath

            Datapath(pin_dir=self.pin_dir).unpin()
        shutil.rmtree(self.pin_dir, ignore_errors=True)


class Plugin:
    """`bayctl node docker-plugin` under a unique name; restartable (the restart tests)."""

    def __init__(self, root, tag, agent, extra_args=()):
        self.name = f"bplg{tag}"
        self.socket = os.path.join(PLUGIN_DIR, f"{self.name}.sock")
        self.state_dir = os.path.join(root, "plugin-state")
        self.log = os.path.join(root, "plugin.log")
        self.agent = agent
        self.extra_args = list(extra_args)  # e.g. --link-mode ipvlan-l2 --parent X in the qemu tier
        self.process = None
        self.start_timeout = 30.0

    def start(self):
        command = [sys.executable, "-m", "bayctl.cli.main", "node", "docker-plugin", "--name", self.name,
                   "--plugin-dir", PLUGIN_DIR, "--state-dir", self.state_dir,
                   "--agent-socket", self.agent.socket, "--link-prefix", LINK_PREFIX, *self.extra_args]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
        _wait_for(lambda: os.path.exists(self.socket), "bayctl docker plugin", process=self.process,
                  log=self.log, timeout=self.start_timeout)

    def kill(self):
        """SIGKILL: the harshest restart (no cleanup at all)."""
        self.process.kill()
        self.process.wait(10)

    def stop(self):
        _stop(self.process)

    def state(self):
        with open(os.path.join(self.state_dir, "docker.json")) as f:
            return json.load(f)

    def ipam(self):
        with open(os.path.join(self.state_dir, "ipam.json")) as f:
            return json.load(f)


@pytest.fixture(scope="session")
def bplg_root():
    root = tempfile.mkdtemp(prefix="bplg-", dir="/var/tmp")  # not /tmp: vfs layers are big for tmpfs
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def bplg_tag():
    return secrets.token_hex(3)


@pytest.fixture(scope="session")
def bplg_agent(bplg_root, bplg_tag):
    require_root()
    require(os.path.isdir("/sys/fs/bpf"), "needs bpffs at /sys/fs/bpf")
    agent = Agent(bplg_root, bplg_tag)
    try:
        agent.start()
        yield agent
    finally:
        agent.stop()


@pytest.fixture(scope="session")
def bplg_dockerd(bplg_root):
    require_root()
    require_tools("dockerd", "docker", "busybox", "tar")
    daemon = Dockerd(os.path.join(bplg_root, "docker"))
    os.makedirs(daemon.root)
    try:
        daemon.start()
        daemon.import_busybox_image()
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def bplg_plugin(bplg_root, bplg_tag, bplg_agent, bplg_dockerd):
    plugin = Plugin(bplg_root, bplg_tag, bplg_agent)
    try:
        plugin.start()
        yield plugin
    finally:
        # Networks go first, while the plugin can still delete their bridges.
        with contextlib.suppress(Exception):
            ids = bplg_dockerd.out("ps", "-aq").split()
            if ids:
                bplg_dockerd.docker("rm", "-f", *ids, check=False)
            for net in bplg_dockerd.out("network", "ls", "-q", "--filter", f"driver={plugin.name}").split():
                _remove_network(bplg_dockerd, net)
        plugin.stop()
        # Safety net: the node side of any network this session's plugin still knew.
        with contextlib.suppress(Exception):
            from bayctl.node import links

            for network in plugin.state()["networks"].values():
                links.delete_link(network["link"])
        with contextlib.suppress(FileNotFoundError):
            os.unlink(plugin.socket)


# -- what the tests ask of containers ----------------------------------------------------------------

class Net:
    """Connectivity probes run inside containers with busybox (ping, nc) and on the node itself."""

    def __init__(self, daemon):
        self.daemon = daemon

    def ip(self, container, network):
        fmt = '{{(index .NetworkSettings.Networks "' + network + '").IPAddress}}'
        return self.daemon.out("inspect", "-f", fmt, container)

    def tcp(self, container, ip, port, tries=1):
        """Does a TCP connection from `container` to ip:port open? (nc -w1: a drop times out)"""
        for _ in range(tries):
            if self.daemon.docker("exec", container, "nc", "-w", "1", ip, str(port), check=False,
                                  input=b"").returncode == 0:
                return True
        return False

    def ping(self, container, ip, tries=1):
        for _ in range(tries):
            if self.daemon.docker("exec", container, "ping", "-c", "1", "-W", "1", ip,
                                  check=False).returncode == 0:
                return True
        return False

    def reaches(self, container, ip, port=None):
        """Allowed flows get a few tries (the first packet may wait for ARP); denied ones one."""
        return self.tcp(container, ip, port, tries=3) if port else self.ping(container, ip, tries=3)


def node_tcp(ip, port, tries=1):
    """TCP from the node (group `external`) to a container."""
    for _ in range(tries):
        if subprocess.run(["busybox", "nc", "-w", "1", ip, str(port)], input=b"",
                          capture_output=True).returncode == 0:
            return True
    return False


def host_links(prefix=LINK_PREFIX):
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()
            if line.split(":")[1].strip().startswith(prefix)}


@pytest.fixture
def bplg_net(bplg_dockerd):
    return Net(bplg_dockerd)


@pytest.fixture
def bplg_networks(bplg_dockerd, bplg_plugin):
    """Create bayctl networks by name (`make(name, subnet, **options)`), removed at test end."""
    created, containers = [], []

    def make(name, subnet, **options):
        args = ["network", "create", "-d", bplg_plugin.name, "--ipam-driver", bplg_plugin.name,
                "--subnet", subnet]
        for key, value in options.items():
            args += ["-o", f"bayctl.{key.replace('_', '-')}={value}"]
        full = f"bplg-{name}"
        bplg_dockerd.docker(*args, full)
        created.append(full)
        return full

    def run(name, network, *command, options=()):
        args = ["run", "-d", "--name", name, "--network", network, *options, IMAGE]
        bplg_dockerd.docker(*args, *(command or ("sleep", "3600")))
        containers.append(name)
        if any("/tmp/ready" in part for part in command):
            deadline = time.monotonic() + 60
            while bplg_dockerd.docker("exec", name, "test", "-e", "/tmp/ready", check=False).returncode:
                assert time.monotonic() < deadline, f"{name} never became ready"
                time.sleep(0.1)
        return name

    make.run = run
    make.containers = containers
    yield make
    if containers:
        bplg_dockerd.docker("rm", "-f", *containers, check=False)
    for full in reversed(created):
        _remove_network(bplg_dockerd, full)


def _remove_network(daemon, name):
    """docker refuses while it still releases a removed container's endpoint: retry briefly."""
    for _ in range(40):
        result = daemon.docker("network", "rm", name, check=False)
        if result.returncode == 0 or b"not found" in result.stderr:
            return
        time.sleep(0.25)
    print(f"could not remove network {name}: {result.stderr.decode(errors='replace')}", file=sys.stderr)

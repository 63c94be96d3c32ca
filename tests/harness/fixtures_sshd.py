"""Real OpenSSH sshd processes (and real node agents) on loopback, as seeding's counterpart.

Each node of an `SshdBay` is a real `/usr/sbin/sshd -D` on its own loopback address
(127.77.B.N, one port for the whole bay as on a real bay), with its own generated host key,
key authentication only, and an authorized_keys holding the bay's test key; its sshd_config
is the local bay's own (bayctl.providers.local_nodes.render_sshd_config). Each node may run a
real node agent (bayctl's AgentProcess) with its own socket, pin dir and state dir; the node's sshd hands
the agent's socket to every session (server-side `SetEnv BAYCTL_AGENT_SOCKET=...`, OpenSSH
8.7+) and puts this Python's `bayctl` first on PATH, so `bayctl node ...` run over SSH talks
to that node's agent, as on a slave.

Used by tests/functional/test_seed_*.py (fixture `sshd_bay_factory`) and bench/seed.py.
Names carry the room prefix "bseed"; every process, pin dir and file is removed on teardown.
"""

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

SSHD = "/usr/sbin/sshd"
PORT_RANGE = range(22200, 23000)
PREFIX = "bseed"
PIN_ROOT = "/sys/fs/bpf"
_bay_numbers = itertools.count(1)


def loopback_ip(bay_number, index):
    """127.77.<bay>.<index+1>: a distinct address per node, all routed to lo by Linux."""
    return f"127.77.{bay_number % 250}.{index + 1}"


def free_port(ips):
    """A port of PORT_RANGE free on every address in `ips` (start at a random point)."""
    start = (os.getpid() * 7919 + int(time.time() * 1000)) % len(PORT_RANGE)
    for offset in range(len(PORT_RANGE)):
        port = PORT_RANGE[(start + offset) % len(PORT_RANGE)]
        try:
            for ip in ips:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((ip, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no free port in {PORT_RANGE.start}-{PORT_RANGE.stop - 1}")


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def generate_key(path, comment, key_type="ed25519"):
    """A fresh key pair at path / path.pub, by the product's own key writer."""
    from bayctl.providers.local_nodes import generate_host_key

    for stale in (path, path + ".pub"):
        if os.path.exists(stale):
            os.unlink(stale)
    generate_host_key(path, comment, key_type)


class SshdNode:
    """One node: an sshd (and optionally an agent) on a loopback address."""

    def __init__(self, name, ip, port, workdir, authorized_key, forwarding=False, agent=True,
                 pin_dir=None, host_key_types=("ed25519",)):
        self.name, self.ip, self.port = name, ip, port
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        # The first type is `host_key`; a Debian node has rsa, ecdsa and ed25519 keys.
        self.host_keys = [os.path.join(self.dir, f"ssh_host_{kind}_key") for kind in host_key_types]
        self.host_key, self.host_key_types = self.host_keys[0], tuple(host_key_types)
        self.socket = os.path.join(self.dir, "agent.sock")
        self.state_dir = os.path.join(self.dir, "state")
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        self.pin_dir = pin_dir or os.path.join(PIN_ROOT, f"{PREFIX}-{os.getpid()}-{name}")
        self.with_agent = agent
        self.sshd = None
        self.agent = None
        with open(os.path.join(self.dir, "authorized_keys"), "w") as handle:
            handle.write(authorized_key)
        for kind, path in zip(host_key_types, self.host_keys):
            generate_key(path, f"{PREFIX}-{name}", kind)
        self._write_config(forwarding)

    def _write_config(self, forwarding):
        # The product's writer (the local bay's nodes use it too); a higher MaxStartups, as
        # the seeding tests and bench open hundreds of sessions at once.
        from bayctl.providers.local_nodes import render_sshd_config

        text = render_sshd_config(f"{self.ip}:{self.port}", self.host_keys,
                                  os.path.join(self.dir, "authorized_keys"), forwarding,
                                  self.socket, self.home, max_startups="200:30:400")
        self.config = os.path.join(self.dir, "sshd_config")
        with open(self.config, "w") as handle:
            handle.write(text)

    # -- sshd -----------------------------------------------------------------------------

    def start_sshd(self, wait=True):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        log = open(os.path.join(self.dir, "sshd.log"), "ab")
        self.sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", self.config], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        if wait:
            self.wait_sshd()

    def wait_sshd(self, timeout=15):
        def ready():
            if self.sshd.poll() is not None:
                raise RuntimeError(f"sshd of {self.name} exited: {self.sshd_log()}")
            from bayctl.providers.local_nodes import port_open

            return port_open(self.ip, self.port)

        wait_until(ready, timeout, f"sshd of {self.name} on {self.ip}:{self.port}")

    def stop_sshd(self):
        _stop(self.sshd)
        self.sshd = None

    def sshd_log(self):
        try:
            with open(os.path.join(self.dir, "sshd.log")) as handle:
                return handle.read()[-2000:]
        except OSError:
            return ""

    def new_host_key(self):
        """The node is "rebuilt": a fresh host key, sshd restarted."""
        self.stop_sshd()
        for kind, path in zip(self.host_key_types, self.host_keys):
            generate_key(path, f"{PREFIX}-{self.name}-rebuilt", kind)
        self.start_sshd()

    # -- agent ----------------------------------------------------------------------------

    def start_agent(self, wait=True):
        from bayctl.node.agent_process import AgentProcess

        self.agent = AgentProcess(self.socket, self.pin_dir, self.state_dir,
                                  log_path=os.path.join(self.dir, "agent.log")).spawn()
        if wait:
            self.wait_agent()

    def wait_agent(self, timeout=30):
        self.agent.wait_ready(timeout)

    def stop_agent(self):
        if self.agent is not None:
            self.agent.close()
        self.agent = None
        if os.path.exists(self.socket):
            os.unlink(self.socket)

    def agent_digest(self):
        """The digest the node's agent holds, asked directly (not over SSH)."""
        from bayctl.node.client import AgentClient

        return AgentClient(self.socket).show_policy().get("digest")

    def node(self, public=True):
        from bayctl.providers.base import SLAVE, Node

        return Node(name=self.name, role=SLAVE, public_ip=self.ip if public else None, private_ip=self.ip)

    def close(self):
        self.stop_sshd()
        self.stop_agent()
        if os.path.isdir(self.pin_dir):
            shutil.rmtree(self.pin_dir, ignore_errors=True)


def _stop(process):
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class SshdBay:
    """A master and N slaves as real sshd nodes, a client key, and a bay state dir."""

    def __init__(self, slaves, agents=True, master=False, workdir=None, ready_timeout=30,
                 host_key_types=("ed25519",)):
        self.number = next(_bay_numbers) + (os.getpid() % 50) * 4
        self.workdir = workdir or tempfile.mkdtemp(prefix=f"{PREFIX}-bay-")
        self.state_dir = os.path.join(self.workdir, "bay-state")
        os.makedirs(self.state_dir)
        self.key = os.path.join(self.workdir, "id_ed25519")
        generate_key(self.key, f"{PREFIX}-client")
        with open(self.key + ".pub") as handle:
            authorized = handle.read()
        count = slaves + (1 if master else 0)
        ips = [loopback_ip(self.number + index // 250, index % 250) for index in range(count)]
        self.port = free_port(ips)
        self.master = None
        self.slaves = []
        self._all = []
        try:
            if master:
                self.master = SshdNode(f"{PREFIX}-master", ips[0], self.port, self.workdir, authorized,
                                       forwarding=True, agent=False)
                self._all.append(self.master)
            for index in range(slaves):
                node = SshdNode(f"{PREFIX}-slave{index}", ips[index + (1 if master else 0)], self.port,
                                self.workdir, authorized, agent=agents, host_key_types=host_key_types)
                self.slaves.append(node)
                self._all.append(node)
            for node in self._all:  # start all, then wait all: parallel start-up
                node.start_sshd(wait=False)
                if node.with_agent:
                    node.start_agent(wait=False)
            for node in self._all:
                node.wait_sshd(ready_timeout)
                if node.with_agent:
                    node.wait_agent(ready_timeout)
        except BaseException:
            self.close()
            raise

    def nodes(self, public=True):
        return [slave.node(public=public) for slave in self.slaves]

    @contextlib.contextmanager
    def silent_node(self, ip):
        """A node at `ip` on the bay's port that accepts TCP and never speaks SSH (a hung sshd)."""
        from bayctl.providers.base import SLAVE, Node

        with socket.socket() as silent:
            silent.bind((ip, self.port))
            silent.listen()
            yield Node(f"{PREFIX}-silent", SLAVE, ip, None)

    def seed_options(self, **extra):
        options = dict(bay_state_dir=self.state_dir, ssh_user="root", ssh_key=self.key, ssh_port=self.port)
        options.update(extra)
        return options

    def close(self):
        for node in self._all:
            node.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def sshd_prerequisites():
    """Skip (or fail under CI) unless real sshd-based tests can run here."""
    from harness.prereq import require, require_root, require_tools

    require_root()
    require(os.path.exists(SSHD), f"needs OpenSSH's {SSHD} (Debian openssh-server)")
    require_tools("ssh", "ssh-keygen", "curl")  # curl: the remote="curl" mode runs it on the node


@pytest.fixture
def sshd_bay_factory():
    """Call with (slaves, agents=True, master=False) -> SshdBay; all torn down after the test."""
    sshd_prerequisites()
    bays = []

    def make(slaves, **options):
        bay = SshdBay(slaves, **options)
        bays.append(bay)
        return bay

    yield make
    for bay in bays:
        bay.close()

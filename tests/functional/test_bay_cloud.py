"""A heat bay through the SAME create steps as a local bay, against the REAL Heat tier.

Heat (real engine, bayctl's real templates, Nova/Neutron stand-ins) makes the stack; the
"servers" at the addresses its outputs name are then booted by this test as network
namespaces with their own sshd and agent (as cloud-init would start them, a little after
the stack completes), on a bridge routing exactly those test-net ranges to them. From
there the pipeline is the one a cloud bay runs: wait for the agents over SSH (host keys
trusted on first use), seed the policy, read it back; delete removes the stack and state.
"""

import os
import subprocess
import threading
import time

import pytest
from prereq import require_root, require_tools

from bayctl import api
from bayctl.create.context import Status
from bayctl.create.state import BayState
from bayctl.node.client import AgentClient
from bayctl.policy import load_policy
from bayctl.providers import local_net, local_nodes
from bayctl.providers.base import SLAVE, Node

pytestmark = [pytest.mark.cloud, pytest.mark.root, pytest.mark.sshd]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB_DB = os.path.join(ROOT, "policy", "examples", "web-db.yaml")
BRIDGE = "bb-cloudnet"
FAKE = "cloudfake"  # namespaces bb-cloudfake-<node>
# What the stand-ins hand out (heat_templates/standins): floating 198.51.100.1xx, fixed 10.0.0.1xx.
# Not 203.0.113.0/24: this machine's package registries answer there, and a bridge holding
# that /24 would cut apt, pip and DIB off while the test runs.
TEST_NETS = ("198.51.100.1/24", "10.0.0.1/24")


def sh(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


class FakeServers:
    """Namespaces answering at the addresses Heat reported, each with sshd (+ agent on slaves)."""

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.booted = []

    def boot(self, node, public_key):
        files = local_nodes.NodeFiles(FAKE, node.name, self.directory)
        name = local_net.netns_name(FAKE, node.name)
        veth = f"bb-cf{len(self.booted)}"
        self.booted.append(name)
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
        sh("ip", "link", "set", veth, "master", BRIDGE, "up")
        for address in {node.public_ip, node.private_ip} - {None}:
            sh("nsenter", f"--net={files.netns}", "ip", "addr", "add", f"{address}/24", "dev", "eth0")
        sh("nsenter", f"--net={files.netns}", "ip", "link", "set", "eth0", "up")
        sh("nsenter", f"--net={files.netns}", "ip", "link", "set", "lo", "up")
        authorized = os.path.join(self.directory, "authorized_keys")
        with open(authorized, "w") as handle:
            handle.write(public_key)
        local_nodes.ensure_host_key(files)
        local_nodes.write_sshd_config(files, "0.0.0.0", authorized, forwarding=True)
        local_nodes.ensure_sshd(files)
        if node.role == SLAVE:
            local_nodes.ensure_agent(files)
        return files

    def remove(self):
        from bayctl.node.agent_process import remove_tree

        names = local_net.bay_namespaces(FAKE)
        pids = [pid for name in names
                for pid in local_net.processes_in(os.path.join(local_net.NETNS_DIR, name))]
        local_nodes.stop_all(pids)
        for name in names:
            local_net.delete_namespace(name)
            remove_tree(os.path.join(local_nodes.BPFFS, name))
        remove_tree(local_nodes.socket_dir(FAKE))


@pytest.fixture
def fake_servers(tmp_path):
    require_root()
    require_tools("ip", "nsenter", "setsid", "ssh-keygen", "sshd")
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    servers = FakeServers(str(tmp_path / "servers"))
    try:
        for cidr in TEST_NETS:  # these ranges now lead to this bridge only: nothing leaves the machine
            sh("ip", "addr", "add", cidr, "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        yield servers
    finally:
        servers.remove()
        sh("ip", "link", "del", BRIDGE, check=False)


@pytest.fixture
def tier_image(cloud_conn, tmp_path):
    """A (tiny) node image in the tier's real Glance, for the ensure-image step to find."""
    name = "bbc-node-image"
    image = cloud_conn.image.find_image(name, ignore_missing=True)
    if image is None:
        data = tmp_path / "node.raw"
        data.write_bytes(b"\0" * 4096)
        image = cloud_conn.create_image(name, filename=str(data), disk_format="raw", container_format="bare",
                                        os_distro="debian", wait=True)
    yield name
    cloud_conn.image.delete_image(image, ignore_missing=True)


def test_heat_bay_runs_the_same_steps_as_a_local_bay(cloud_conn, clouds_yaml, tier_image, fake_servers,
                                                     tmp_path, monkeypatch):
    from bayctl.providers import get_provider
    from bayctl.providers.heat import templates_dir

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", clouds_yaml)
    monkeypatch.setenv("BAYCTL_STATE_DIR", str(tmp_path / "bays"))
    key = tmp_path / "id_ed25519"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    options = {"environments": [os.path.join(templates_dir(), "environments", "standins.yaml")],
               "poll_interval": 1}
    name, lines, outcome = "bbc-heat", [], {}

    def progress(line):
        lines.append(line)
        print(line, flush=True)  # shown with -s: a cloud build is slow, and this is where it is

    def create():
        try:
            outcome["bay"] = api.create_bay(
                name, provider="heat", slaves=1, image=tier_image, flavor="m1.small", keypair="bbc-key",
                external_network="public", cloud="bayctl-test", ssh_user="root", ssh_key=str(key),
                policy=WEB_DB, timeout="480", status=Status(progress), provider_options=options)
        except Exception as err:  # reported by the assertion below
            outcome["error"] = err

    # A daemon: should this test fail before the servers boot, the create it started cannot
    # keep the session alive (it gives up by itself within the spec's timeout).
    worker = threading.Thread(target=create, daemon=True)
    worker.start()
    try:
        nodes = []
        deadline = time.monotonic() + 480
        while worker.is_alive() and not nodes and time.monotonic() < deadline:
            state = BayState.load(name)
            nodes = state.nodes if state is not None else []
            time.sleep(0.5)
        assert nodes, f"the stack never reported its nodes: {outcome.get('error')} {lines[-3:]}"
        bay_nodes = [Node(**fields) for fields in nodes]
        addresses = [n.public_ip for n in bay_nodes] + [n.private_ip for n in bay_nodes]
        assert len(set(addresses)) == len(addresses), f"stand-ins gave one address twice: {addresses}"
        public_key = (tmp_path / "id_ed25519.pub").read_text()
        booted = {node.name: fake_servers.boot(node, public_key) for node in bay_nodes}
    finally:
        worker.join(480)
    assert "error" not in outcome, outcome.get("error")

    bay = outcome["bay"]
    assert (bay.status, bay.provider) == ("READY", "heat")
    assert bay.state.ref.startswith(f"{name}/")
    assert bay.state.steps == {"ensure-image": "done", "ensure-template": "skipped", "create-stack": "done",
                               "wait": "done", "collect-nodes": "done", "wait-for-agents": "done",
                               "seed-policy": "done", "verify": "skipped"}
    assert any(line.startswith("   Waiting for the nodes [") and "CREATE_COMPLETE" in line for line in lines)
    # The slave's agent holds the policy, seeded over SSH; its host key was recorded on first
    # contact (trust on first use: a cloud provider knows no host keys up front).
    digest = load_policy(WEB_DB).digest
    slave = bay.slaves[0]
    assert AgentClient(booted[slave.name].agent_socket).show_policy()["digest"] == digest
    with open(os.path.join(bay.state.directory, "known_hosts")) as handle:
        recorded = {line.split()[0] for line in handle if line.strip()}
    assert (slave.public_ip or slave.private_ip) in recorded

    assert api.delete_bay(name, provider_options=options)
    assert get_provider("heat", cloud_conn).find(name) is None
    assert BayState.load(name) is None and not os.path.exists(os.path.join(tmp_path, "bays", name))

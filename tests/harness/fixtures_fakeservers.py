"""Fake cloud servers: network namespaces answering at the addresses a cloud stack reported.

A cloud provider's stack (real Heat with stand-ins for Nova/Neutron leaves, or a Magnum
cluster built in that Heat) reports addresses, but no machine boots. `fake_servers` boots one
namespace per node at those addresses, each with its own sshd (key auth, own host key) and,
on slaves, a real `bayctl node agent`, as cloud-init would start them, after the container
networking step of the nodes' user data (`bayctl node hostgw` with the bay's ranges: the
node's container subnet, its CNI config, forwarding and host-gw routes to the other nodes).
They hang off one bridge that holds exactly the stand-ins' test-net ranges, so traffic to
those addresses stays on this machine; that bridge is the bay's L2 network, and nothing but
what the nodes set up themselves routes the containers' subnets.
"""

import fcntl
import os
import shutil
import subprocess
import time

import pytest

from bayctl.model import SLAVE
from bayctl.providers import local_net, local_nodes
from harness.prereq import require_root, require_tools

BRIDGE = "bb-cloudnet"
FAKE = "cloudfake"  # namespaces bb-cloudfake-<node>
# What the stand-ins hand out (share/heat_templates/standins): floating 198.51.100.1xx, fixed 10.0.0.1xx.
# Not 203.0.113.0/24: this machine's package registries answer there, and a bridge holding
# that /24 would cut apt, pip and DIB off while the test runs.
TEST_NETS = ("198.51.100.1/24", "10.0.0.1/24")
PRIVATE_CIDR = "10.0.0.0/24"  # the templates' fixed_network_cidr
LOCK = "/run/lock/bayctl-fake-servers.lock"  # taken while the bridge holds TEST_NETS


def sh(*argv, check=True):
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout


class FakeServers:
    """Namespaces answering at the addresses Heat reported, each with sshd (+ agent on slaves)."""

    def __init__(self, directory):
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.booted = []

    def boot(self, node, public_key, container_cidr=None):
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
        if container_cidr:  # the user data's `bayctl node hostgw` (configure-slave.sh / -master.sh)
            cni = ["--cni-dir", os.path.join(files.dir, "cni")] if node.role == SLAVE else ["--no-cni"]
            sh("nsenter", f"--net={files.netns}", shutil.which("bayctl"), "node", "hostgw",
               "--container-cidr", container_cidr, "--private-cidr", PRIVATE_CIDR, *cni, "-f", "value")
        authorized = os.path.join(self.directory, "authorized_keys")
        with open(authorized, "w") as handle:
            handle.write(public_key)
        local_nodes.ensure_host_key(files)
        local_nodes.write_sshd_config(files, "0.0.0.0", authorized, forwarding=True)
        local_nodes.ensure_sshd(files)
        if node.role == SLAVE:
            local_nodes.ensure_agent(files)
        return files

    def boot_reported(self, bay_name, public_key, worker, timeout=480):
        """Wait (while `worker`, the thread running `create`, is alive) until the bay's state
        names its nodes, as the collect-nodes step records them; boot one server per node.
        Returns {node name: NodeFiles}; raises AssertionError naming why no node came."""
        from bayctl.create.state import BayState

        nodes, state = [], None
        deadline = time.monotonic() + timeout
        while worker.is_alive() and not nodes and time.monotonic() < deadline:
            state = BayState.load(bay_name)
            nodes = state.nodes if state is not None else []
            time.sleep(0.5)
        assert nodes, f"bay {bay_name}: the stack never reported its nodes"
        bay_nodes = list(nodes)  # bayctl.model.Node, as the state holds them
        addresses = [n.public_ip for n in bay_nodes] + [n.private_ip for n in bay_nodes]
        assert len(set(addresses)) == len(addresses), f"stand-ins gave one address twice: {addresses}"
        container_cidr = state.spec.get("container_cidr") if state is not None else None
        return {node.name: self.boot(node, public_key, container_cidr) for node in bay_nodes}

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
    # One machine-wide set of stand-in addresses: test runs beside each other (developers'
    # tiers on other port bases) take turns rather than fight over the bridge and routes.
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield from _fake_servers(tmp_path)
    finally:
        lock.close()


def _fake_servers(tmp_path):
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



"""Fixtures of the VM tier: the session's node image in the real Glance, and servers as VMs.

`vm_image` uploads the image the session built (fixtures_image.node_image, its one build) to
the tier's REAL Glance, in the VM tier's own project (cloudtier/tier.py VM_PROJECT, whose
unified limit has room for it). `vm_servers` gives the Nova emulator a QemuLauncher while a
test runs: every server Heat (or anyone) creates in it boots the image under qemu (TCG) with
a config drive (emulators/vms.py); at the end every VM left is killed and its disks removed.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

from harness.prereq import require_root, require_tools

VM_TOOLS = ("qemu-system-x86_64", "qemu-img", "genisoimage", "socat", "ssh-keygen", "ip", "nsenter",
            "iptables")
EXTERNAL_NETWORK = "vm-public"  # the external network of the VM tier's bays (floating IPs)
VM_FLAVOR = "vm-node"
VM_MEMORY_MB = 448  # issue 13: 384-512 MB per node, three nodes on a 2-core CI machine


@pytest.fixture(scope="session")
def vm_conn(cloud_tier):
    """An openstacksdk connection as the VM tier's user, in its own project."""
    from bayctl.cloud.connection import connect
    from harness.cloudtier.tier import VM_PROJECT

    conn = connect(**cloud_tier.user_auth(VM_PROJECT, cloud_tier.demo_password, VM_PROJECT))
    yield conn
    conn.close()


@pytest.fixture(scope="session")
def vm_image(node_image, vm_conn):
    """The session's built node image, uploaded once to the real Glance; its Glance id."""
    from bayctl.image.upload import upload

    result = upload(vm_conn, node_image["image"], "bayctl-vm-node", timeout=900)
    yield result.image.id
    vm_conn.image.delete_image(result.image, ignore_missing=True)


@pytest.fixture(scope="session")
def vm_flavor(cloud_conn):
    """A flavor of VM_MEMORY_MB, 1 vCPU (created as admin, as flavors are)."""
    flavor = cloud_conn.compute.find_flavor(VM_FLAVOR, ignore_missing=True)
    if flavor is None:
        flavor = cloud_conn.compute.create_flavor(name=VM_FLAVOR, ram=VM_MEMORY_MB, vcpus=1, disk=4)
    yield flavor.name
    cloud_conn.compute.delete_flavor(flavor, ignore_missing=True)


@pytest.fixture(scope="module")
def vm_keypair(vm_conn, tmp_path_factory):
    """(name, private key path, public key line) of a fresh key, registered in Nova; one per
    module, as a module's VMs are shared by its tests."""
    require_tools("ssh-keygen")
    tmp_path = tmp_path_factory.mktemp("vm_key")
    key = tmp_path / "vm_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bayctl-vm-tier", "-f", str(key)],
                   check=True)
    public = (tmp_path / "vm_key.pub").read_text().strip()
    name = f"vm-key-{os.getpid()}-{tmp_path.name[-12:]}"
    vm_conn.compute.create_keypair(name=name, public_key=public)
    yield name, str(key), public
    vm_conn.compute.delete_keypair(name, ignore_missing=True)


@pytest.fixture
def vm_servers(cloud_tier, tmp_path):
    """The Nova emulator's servers are qemu VMs while the test runs; yields the launcher."""
    yield from _vm_servers(cloud_tier, tmp_path, fabric=None)


@pytest.fixture(scope="module")
def vm_network(cloud_tier, cloud_conn, tmp_path_factory):
    """Servers are VMs AND Neutron's networks exist (emulators/fabric.py: one namespace with
    a bridge per network, taps for ports, floating IPs NATed, a veth from the host to the
    floating range); the external network EXTERNAL_NETWORK is there for the bay's router.
    Yields the launcher (its .fabric is the fabric). One per module: its bay is shared."""
    from harness.emulators.fabric import EXTERNAL_CIDR, Fabric

    require_root()
    require_tools(*VM_TOOLS)
    neutron = cloud_tier.emulators.neutron
    fabric = Fabric()
    network = subnet = None
    neutron.fabric = fabric
    try:
        network = cloud_conn.network.create_network(name=EXTERNAL_NETWORK, is_router_external=True)
        subnet = cloud_conn.network.create_subnet(network_id=network.id, cidr=EXTERNAL_CIDR, ip_version=4,
                                                  name=f"{EXTERNAL_NETWORK}-subnet")
        yield from _vm_servers(cloud_tier, tmp_path_factory.mktemp("vm_network"), fabric=fabric)
    finally:
        neutron.fabric = None
        if subnet is not None:
            cloud_conn.network.delete_subnet(subnet, ignore_missing=True)
        if network is not None:
            cloud_conn.network.delete_network(network, ignore_missing=True)
        fabric.close()


def _vm_servers(cloud_tier, tmp_path, fabric):
    from harness.cloudtier.tier import PORTS
    from harness.emulators.vms import QemuLauncher

    require_root()
    require_tools(*VM_TOOLS)
    nova = cloud_tier.emulators.nova
    workdir = tempfile.mkdtemp(prefix="bayctl-vms-", dir="/var/tmp")
    # Serial consoles outlive the VMs in the test's tmp_path: what a failed boot said.
    launcher = QemuLauncher(workdir, PORTS["heat"], memory_mb=VM_MEMORY_MB,
                            keep_consoles=str(tmp_path / "consoles"), fabric=fabric,
                            cfn_port=PORTS["heat-cfn"])
    nova.launcher = launcher
    try:
        yield launcher
    finally:
        nova.launcher = None
        launcher.close()
        shutil.rmtree(workdir, ignore_errors=True)

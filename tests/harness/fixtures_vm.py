"""Fixtures of the VM tier: the session's node image in the real Glance, and servers as VMs.

`vm_image` uploads the image the session built (fixtures_image.node_image, its one build) to
the tier's REAL Glance, in the VM tier's own project (cloudtier/tier.py VM_PROJECT, whose
unified limit has room for it). `vm_servers` gives the Nova emulator a QemuLauncher while a
test runs: every server Heat (or anyone) creates in it boots the image under qemu (TCG) with
a config drive (emulators/vms.py); at the end every VM left is killed and its disks removed.
"""

import contextlib
import json
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


@contextlib.contextmanager
def as_vm_user(cloud_tier, workdir, cloud_name, **cloud_options):
    """While inside: bayctl's cloud is `cloud_name`, the VM tier's user in its own project (a
    clouds.yaml entry in `workdir`, plus `cloud_options`), and its bays live in workdir/bays.
    The environment is put back on the way out."""
    import yaml

    from harness.cloudtier.tier import VM_PROJECT

    auth = dict(cloud_tier.user_auth(VM_PROJECT, cloud_tier.demo_password, VM_PROJECT))
    region = auth.pop("region_name")
    auth.pop("identity_api_version")
    clouds = workdir / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {cloud_name: {
        "auth": auth, "region_name": region, "identity_api_version": 3, **cloud_options}}}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
        patch.setenv("BAYCTL_STATE_DIR", str(workdir / "bays"))
        yield cloud_name


def printed_progress():
    """(lines, callback): create's progress, kept for the tests and printed as it comes (a TCG
    bay takes minutes; -s shows where it is)."""
    lines = []

    def progress(line):
        lines.append(line)
        print(line, flush=True)

    return lines, progress


def node_ssh(bay_name, node, command):
    """`command` on a node of the bay over bayctl's own SSH (its key, known_hosts); its stdout."""
    from bayctl import api

    done = subprocess.run(api.ssh_argv(bay_name, node, command), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{node}: {' '.join(command)}: {done.stderr.strip()}"
    return done.stdout


def recorded_start(bay_name, node, daemon):
    """How the stand-in Mesos package's `daemon` (mesos-master, mesos-agent, ...) was started
    inside the node: the flags and config it recorded."""
    record = f"/var/lib/mesos-standin/{daemon}.json"
    return json.loads(node_ssh(bay_name, node, ["sudo", "-n", "cat", record]))


def assert_verified_on_ipvlan(report, bay):
    """verify measured the bay's matrix with 0 mismatches, its probes placed on every slave on
    ipvlan-l2 (the mode each slave's own Mesos network, bayctl-hostgw's CNI config, names)."""
    assert report.pairs, "verify measured nothing"
    assert report.ok and not report.mismatches, [m.describe() for m in report.mismatches]
    slaves = {node.name for node in bay.slaves}
    placed = {name: ep for name, ep in report.placement.items() if ep["node"] in slaves}
    assert {ep["node"] for ep in placed.values()} == slaves, report.placement
    assert {ep["link"] for ep in placed.values()} == {"ipvlan-l2"}, report.placement
    assert report.policy_digest == bay.state.policy_digest


def assert_slave_mesos_uses_bayctl_cni(bay, slave, cni_dir="/etc/bayctl/cni"):
    """The slave's Mesos agent was started as a real Mesos needs to use bayctl's CNI plugin (CNI
    isolators, the mesos containerizer, `cni_dir`), and the network it found there is bayctl's,
    on this slave's own container subnet. Returns the agent's recorded flags."""
    from bayctl.node import hostgw

    record = recorded_start(bay.name, slave.name, "mesos-slave")
    flags = record["flags"]
    assert flags["network_cni_config_dir"] == cni_dir
    isolators = flags["isolation"].split(",")
    assert {"filesystem/linux", "network/cni"} <= set(isolators), isolators
    assert "mesos" in flags["containerizers"].split(","), flags["containerizers"]
    config = json.loads(record["cni_configs"][hostgw.CNI_CONFIG_NAME])
    assert config["type"] == "bayctl-cni" and config["name"] == hostgw.CNI_NETWORK
    own = hostgw.container_subnet(slave.private_ip, hostgw.DEFAULT_PRIVATE_CIDR, bay.spec.container_cidr)
    assert config["ipam"] == hostgw.cni_config(own)["ipam"], (slave.name, config)
    return flags


def assert_policy_goes_through_the_masters_zookeeper(made, created_with, applied):
    """`distribution auto` took the ZooKeeper on the bay's master, reached through its SSH:
    create's own apply (`created_with`) went that way, every slave reporting it, and verify
    measured it in the kernels; a later apply of `applied` goes the same way, every slave
    reports it, keeps the history, and each agent enforces it (asked inside the VM). No second
    verify: under TCG it costs minutes, and the first measured a policy that came this way."""
    import time

    from bayctl import api
    from bayctl.distribution import _via, zookeeper
    from bayctl.node.protocol import DEFAULT_SOCKET
    from bayctl.policy import load_policy

    bay, report, lines = made["bay"], made["report"], made["lines"]
    first, later = load_policy(created_with).digest, load_policy(applied).digest
    assert bay.state.steps["setup-distribution"] == "done", bay.state.steps
    assert bay.to_dict()["distribution"] == "zookeeper"
    creds = zookeeper.Credentials.load(bay.state.directory)
    assert creds.tunnel and creds.hosts == f"{bay.master.private_ip}:2181"
    slaves = [slave.name for slave in bay.slaves]
    assert sum("watches the bay's ZooKeeper" in line for line in lines) == len(slaves)
    assert sum(line.startswith("   Seeding the group policy [") and line.endswith(": reports")
               for line in lines) == len(slaves)   # create's apply: each slave's report, through ZooKeeper
    assert report.pairs and report.ok and not report.mismatches and report.policy_digest == first

    started = time.monotonic()
    results = api.apply_policy(bay.name, applied)
    print(json.dumps({"apply_s": round(time.monotonic() - started, 1)}))
    assert [(r.status, r.address) for r in results] == [("seeded", f"zookeeper {creds.hosts}")] * len(slaves)
    fresh = api.get_bay(bay.name)
    client = zookeeper.connect(creds, via=_via(fresh.state, fresh.nodes, fresh.ssh_user, fresh.ssh_key))
    try:
        reported = zookeeper.reports(client, creds, slaves)
        versions = [record["digest"] for record in zookeeper.history(client, creds)]
    finally:
        zookeeper.disconnect(client)
    assert {node: report["digest"] for node, report in reported.items()} == dict.fromkeys(slaves, later)
    assert versions[-2:] == [first, later]
    for slave in slaves:
        held = node_ssh(bay.name, slave, ["sudo", "-n", "curl", "-sS", "--unix-socket", DEFAULT_SOCKET,
                                          "http://agent/v1/policy"])
        assert json.loads(held)["digest"] == later
    assert api.get_bay(bay.name).state.policy_digest == later


@contextlib.contextmanager
def made_and_verified(bay_name, provider, provider_options, **create):
    """Create the bay through bayctl's pipeline (a TCG bay: a long timeout, create's progress
    printed), verify it, and yield {bay, report, lines, options}; the bay is deleted on the way
    out if a test has not deleted it already."""
    from bayctl import api
    from bayctl.create.context import Status

    lines, progress = printed_progress()
    try:
        bay = api.create_bay(bay_name, provider=provider, timeout="3000", status=Status(progress),
                             provider_options=provider_options, **create)
        assert (bay.status, bay.provider) == ("READY", provider), lines
        report = api.verify_bay(bay_name, status=Status(progress))
        yield {"bay": bay, "report": report, "lines": lines, "options": provider_options}
    finally:
        if api.find_bay(bay_name) is not None:
            api.delete_bay(bay_name, provider_options=provider_options)

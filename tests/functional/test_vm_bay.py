"""The VM tier (issue 13 items 2, 4): a Heat bay of REAL VMs, created through bayctl's own
create pipeline, seeded, verified on ipvlan, and deleted.

bayctl's production templates (bayctl/share/heat_templates) with environments/openstack.yaml
-- real OS::Nova::Server and OS::Neutron::* resources, no Bay::* stand-ins -- go to the REAL
Heat; the Nova emulator boots each server as a qemu VM (TCG) from the session's image in the
REAL Glance with the user data Heat rendered on a config drive, on the Neutron emulator's
fabric (a bridge per network, floating IPs NATed to the host). The nodes run their fragments
and signal their wait conditions (the master's states its ZooKeeper, Debian's, once it
answers); bayctl collects them, waits for the agents, gives each slave's agent the bay's
ZooKeeper over SSH, puts web-db there (every slave reports it: `distribution auto`), and
`bayctl verify` places probe containers inside the VMs with the link mode each node's own
Mesos network uses (ipvlan: the guest kernel has it).

One bay for the whole module: a TCG boot takes minutes, so every assertion shares it.
"""

import os

import pytest
from harness.fixtures_vm import (
    assert_policy_goes_through_the_masters_zookeeper,
    assert_slave_mesos_uses_bayctl_cni,
    assert_verified_on_ipvlan,
    node_ssh,
    recorded_start,
)
from harness.paths import REPO

pytestmark = [pytest.mark.cloud, pytest.mark.vm]

WEB_DB = os.path.join(REPO, "bayctl", "share", "policies", "web-db.yaml")
STARS = os.path.join(REPO, "bayctl", "share", "policies", "stars.yaml")
BAY = "vmbay"
SLAVES = 2


@pytest.fixture(scope="module")
def vm_bay(cloud_tier, vm_conn, vm_image, vm_flavor, vm_keypair, vm_network, tmp_path_factory):
    """(bay, verify report, the create's progress lines, provider options) of one bay of VMs;
    deleted at the end of the module (test_delete_* deletes it first and checks what is left)."""
    from harness.fixtures_vm import EXTERNAL_NETWORK, as_vm_user, made_and_verified

    from bayctl.providers.heat import templates_dir

    key_name, key_path, _public = vm_keypair
    options = {"environments": [os.path.join(templates_dir(), "environments", "openstack.yaml")],
               "poll_interval": 5}
    with as_vm_user(cloud_tier, tmp_path_factory.mktemp("vmbay"), "bayctl-vm") as cloud, \
            made_and_verified(BAY, "heat", options, slaves=SLAVES, image=vm_image, flavor=vm_flavor,
                              keypair=key_name, external_network=EXTERNAL_NETWORK, cloud=cloud,
                              ssh_user="debian", ssh_key=key_path, policy=WEB_DB) as made:
        yield made


@pytest.mark.timeout(5400)  # the session's image build may fall to this test, then three TCG boots
def test_every_node_is_a_vm_on_the_port_the_templates_asked_for(vm_bay, cloud_tier, vm_conn, vm_network):
    bay = vm_bay["bay"]
    neutron = cloud_tier.emulators.neutron
    servers = {s.name: s for s in vm_conn.compute.servers()}
    assert sorted(node.name for node in bay.nodes) == sorted(servers), "a node that is no server, or back"
    assert bay.master is not None and len(bay.slaves) == SLAVES
    for node in bay.nodes:
        server = servers[node.name]
        vm = vm_network.vms[server.id]
        assert vm.proc.poll() is None, f"{node.name}'s VM stopped"
        [port] = [p for p in neutron.ports.values() if p["device_id"] == server.id]
        assert port["fixed_ips"][0]["ip_address"] == node.private_ip
        assert port["status"] == "ACTIVE" and port["security_groups"]
        assert node.public_ip, f"{node.name} has no floating IP"
    container_cidr = bay.spec.container_cidr
    for slave in bay.slaves:
        [port] = [p for p in neutron.ports.values() if p["device_id"] == servers[slave.name].id]
        # host-gw: the slave's containers send from the container range through this port
        assert port["allowed_address_pairs"] == [{"ip_address": container_cidr}]


def test_the_slaves_boot_together_with_the_master(vm_bay, vm_conn):
    """The master's port is the bay's (its address known before any server boots): every
    slave's server is created before the master has signalled, not after it (Heat's events)."""
    from bayctl.cloud.heat_client import heat

    hc = heat(vm_conn)
    ref = vm_bay["bay"].state.ref
    top = {r.resource_name: r.physical_resource_id for r in hc.resources.list(ref)}

    def event_time(stack_id, resource, status):
        times = [e.event_time for e in hc.events.list(stack_id, resource_name=resource)
                 if e.resource_status == status]
        assert times, f"no {status} event of {resource} in {stack_id}"
        return min(times)

    master_signalled = event_time(top["master"], "wait_condition", "CREATE_COMPLETE")
    members = [r.physical_resource_id for r in hc.resources.list(top["slaves"])]
    assert len(members) == SLAVES
    for member in members:
        started = event_time(member, "server", "CREATE_IN_PROGRESS")
        assert started < master_signalled, (started, master_signalled)


def test_verify_places_containers_on_ipvlan_inside_the_vms_and_finds_no_mismatch(vm_bay):
    assert_verified_on_ipvlan(vm_bay["report"], vm_bay["bay"])


def test_policy_goes_through_the_masters_zookeeper_and_every_slave_reports_it(vm_bay):
    """The image's master runs Debian's ZooKeeper and states it once it answers (its wait
    condition's data): `distribution auto` takes it, bayctl reaching it through the master's
    SSH. Create's own apply (web-db) went that way, every slave reporting it, and the module's
    verify measured it in the kernels (0 mismatches); a later apply goes the same way. (No
    second verify: under TCG it costs ~160 s, and the first already measured a policy that
    travelled through ZooKeeper.)"""
    assert_policy_goes_through_the_masters_zookeeper(vm_bay, WEB_DB, STARS)


def test_the_mesos_daemons_were_started_as_a_real_mesos_needs_to_use_bayctls_plugin(vm_bay):
    """What the stand-in Mesos packages recorded inside each VM (issue 13 item 4)."""
    bay = vm_bay["bay"]
    master = bay.master
    node_env = dict(line.split("=", 1) for line in node_ssh(BAY, master.name, ["cat", "/etc/bayctl/node.env"])
                    .splitlines() if "=" in line and not line.startswith("#"))
    cni_dir = node_env["BAYCTL_CNI_CONFIG_DIR"]
    assert cni_dir == "/etc/bayctl/cni"  # where bayctl-hostgw writes each node's own subnet

    recorded = recorded_start(BAY, master.name, "mesos-master")["flags"]
    assert recorded["zk"] == f"zk://{master.private_ip}:2181/mesos"
    assert recorded["ip"] == master.private_ip
    assert recorded["cluster"] == BAY
    marathon = recorded_start(BAY, master.name, "marathon")["flags"]
    assert marathon["master"] == f"zk://{master.private_ip}:2181/mesos"


    for slave in bay.slaves:
        flags = assert_slave_mesos_uses_bayctl_cni(bay, slave, cni_dir)
        assert flags["master"] == f"zk://{master.private_ip}:2181/mesos"
        assert flags["ip"] == slave.private_ip
        assert flags["network_cni_plugins_dir"] == node_env["BAYCTL_CNI_PLUGINS_DIR"]
        plugin_path = os.path.join(flags["network_cni_plugins_dir"], "bayctl-cni")
        plugin = node_ssh(BAY, slave.name, ["ls", plugin_path])
        assert plugin.strip().endswith("bayctl-cni")


def test_delete_leaves_no_vm_port_or_disk(vm_bay, cloud_tier, vm_conn, vm_network):
    from bayctl import api

    servers = [vm_network.vms[s.id] for s in vm_conn.compute.servers()]
    assert len(servers) == 1 + SLAVES
    assert api.delete_bay(BAY, provider_options=vm_bay["options"])
    assert vm_network.vms == {}, "Heat deleted the stack but a VM is left"
    assert list(vm_conn.compute.servers()) == []
    for vm in servers:
        assert vm.proc.poll() is not None, "a qemu process outlived its server"
        assert not os.path.exists(vm.directory), f"{vm.directory}: its disk is left"
    left = [p for p in cloud_tier.emulators.neutron.ports.values() if p["name"].startswith(BAY)]
    assert left == [], left
    assert api.find_bay(BAY) is None

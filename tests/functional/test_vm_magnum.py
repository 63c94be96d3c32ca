"""The VM tier for Magnum (issue 13 item 2): a REAL Magnum 10.0.0 cluster of REAL VMs from the
image this test run built, through bayctl's `magnum` provider, seeded and verified on ipvlan.

Magnum's conductor renders the stack from Magnum's OWN mesos_ubuntu_v1 templates into the REAL
Heat, with no stand-ins (cloudtier/tier.py `use_magnum_standins(False)`): OS::Nova::Server and
OS::Neutron::* against the Nova/Neutron emulators, whose servers boot the session's image under
qemu on the fabric. Magnum configures the two roles in two ways, and both run here:
- the master (user_data_format SOFTWARE_CONFIG) through four OS::Heat::SoftwareDeploymentGroups
  over Heat's POLL_SERVER_CFN transport: the image's os-collect-config (heat-config-agent
  element) polls the REAL heat-api-cfn for them, heat-agents' `script` hook runs Magnum's
  fragments and heat-config-notify signals each back through heat-api-cfn;
- the slave (RAW user data) through cloud-init running Magnum's fragments, then curl signalling
  the slaves' wait condition to the REAL heat-api.
Then bayctl collects the nodes (opening what Magnum's templates leave closed: the container range
on the slaves' ports, the master's ZooKeeper to the slaves), waits for the agents, gives each
slave's agent the ZooKeeper Magnum's master runs for Mesos and puts web-db there (`distribution
auto`), and `bayctl verify` places probe containers inside the VMs.

One master and ONE slave: everything Magnum-specific (its templates' server, port, floating
IP, deployments, wait condition; its slave script's flags and bayctl's per-node CNI config dir
winning over them) is per node and is proven on one slave; traffic between two slaves' subnets
(host-gw) is the same image and code that tests/functional/test_vm_bay.py proves with two, and
a third TCG VM would cost the tier minutes.
"""

import json
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
BAY = "vmmag"
SLAVES = 1
# Magnum's mesos_ubuntu_v1 driver takes only images whose os_distro is ubuntu ("Cluster type
# (vm, debian, mesos) not supported"): the operator labels bayctl's image so for Magnum 10.
MAGNUM_OS_DISTRO = "ubuntu"
MASTER_DEPLOYMENTS = ("write_params_master_deployment", "configure_master_deployment",
                      "add_proxy_master_deployment", "start_services_master_deployment")


@pytest.fixture(scope="module")
def magnum_vm_bay(cloud_tier, magnum_real, vm_conn, vm_image, vm_flavor, vm_keypair, vm_network,
                  tmp_path_factory):
    """(bay, verify report, progress lines) of one Magnum cluster of VMs, made by bayctl's
    magnum provider as the VM tier's user; deleted at the end of the module."""
    from harness.fixtures_vm import EXTERNAL_NETWORK, as_vm_user, made_and_verified
    from harness.prereq import require

    require(hasattr(cloud_tier, "use_magnum_standins"), "needs a tier this run started (Heat's environment)")
    cloud_tier.use_magnum_standins(False)  # Magnum's servers and ports are the real types here
    key_name, key_path, _public = vm_keypair
    image = vm_conn.image.get_image(vm_image)
    os_distro = image.os_distro
    vm_conn.image.update_image(image, os_distro=MAGNUM_OS_DISTRO)
    options = {"poll_interval": 5}
    # The catalog's container-infra endpoint is the Magnum emulator's; the real Magnum is
    # reached as an operator reaches a Magnum outside the catalog.
    try:
        with as_vm_user(cloud_tier, tmp_path_factory.mktemp("vmmag"), "bayctl-vm-magnum",
                        container_infra_endpoint_override=magnum_real.endpoint) as cloud, \
                made_and_verified(BAY, "magnum", options, slaves=SLAVES, image=vm_image, flavor=vm_flavor,
                                  keypair=key_name, external_network=EXTERNAL_NETWORK, cloud=cloud,
                                  ssh_user="debian", ssh_key=key_path, policy=WEB_DB) as made:
            yield made
    finally:
        vm_conn.image.update_image(image, os_distro=os_distro)


@pytest.mark.timeout(5400)  # the session's image build may fall to this test, then two TCG boots
def test_magnums_own_templates_boot_every_node_as_a_vm(magnum_vm_bay, cloud_tier, vm_conn, vm_network):
    from bayctl.cloud.heat_client import heat

    bay = magnum_vm_bay["bay"]
    hc = heat(vm_conn)
    [summary] = [s for s in hc.stacks.list() if s.stack_name.startswith(BAY)]
    stack = hc.stacks.get(summary.id)  # the list's summaries carry no description
    assert "Mesos cluster" in stack.description  # Magnum's mesoscluster.yaml
    resources = hc.resources.list(stack.id, nested_depth=3)
    types = {r.resource_name: r.resource_type for r in resources}
    # No stand-in: the core types, each created for real.
    assert types["mesos-master"] == "OS::Nova::Server" and types["mesos-slave"] == "OS::Nova::Server"
    assert types["mesos_master_eth0"] == "OS::Neutron::Port"
    assert types["configure_master_deployment"] == "OS::Heat::SoftwareDeploymentGroup"
    assert all(r.resource_status == "CREATE_COMPLETE" for r in resources), \
        [(r.resource_name, r.resource_status) for r in resources if r.resource_status != "CREATE_COMPLETE"]
    servers = {s.name: s for s in vm_conn.compute.servers()}
    assert len(servers) == 1 + SLAVES
    neutron = cloud_tier.emulators.neutron
    by_ip = {}
    for server in servers.values():
        vm = vm_network.vms[server.id]
        assert vm.proc.poll() is None, f"{server.name}'s VM stopped"
        [port] = [p for p in neutron.ports.values() if p["device_id"] == server.id]
        by_ip[port["fixed_ips"][0]["ip_address"]] = port
    assert sorted(by_ip) == sorted(node.private_ip for node in bay.nodes)
    for slave in bay.slaves:  # bayctl added the container range Magnum's templates leave out
        assert {"ip_address": bay.spec.container_cidr} in by_ip[slave.private_ip]["allowed_address_pairs"]


def test_the_master_ran_magnums_deployments_through_heat_api_cfn(magnum_vm_bay, vm_conn):
    """os-collect-config polled heat-api-cfn (POLL_SERVER_CFN), heat-agents' script hook ran
    each of Magnum's four master fragments, and heat-config-notify's signals completed them."""
    from harness.cloudtier.tier import PORTS

    from bayctl.cloud.heat_client import heat

    bay = magnum_vm_bay["bay"]
    hc = heat(vm_conn)
    [stack] = [s for s in hc.stacks.list() if s.stack_name.startswith(BAY)]
    top = {r.resource_name: r for r in hc.resources.list(stack.id)}
    for name in MASTER_DEPLOYMENTS:
        assert top[name].resource_status == "CREATE_COMPLETE", (name, top[name].resource_status_reason)
    master = bay.master.name
    conf = node_ssh(BAY, master, ["sudo", "-n", "cat", "/etc/os-collect-config.conf"])
    assert f":{PORTS['heat-cfn']}/v1/" in conf and "[cfn]" in conf  # rewritten from Heat's metadata
    results = json.loads(node_ssh(BAY, master, ["sudo", "-n", "python3", "-c", (
        "import glob, json; print(json.dumps([json.load(open(p)) for p in "
        "sorted(glob.glob('/var/lib/heat-config/deployed/*.notify.json'))]))")]))
    assert len(results) == len(MASTER_DEPLOYMENTS), results
    assert all(r["deploy_status_code"] == 0 for r in results), results


def test_verify_places_containers_on_ipvlan_inside_the_vms_and_finds_no_mismatch(magnum_vm_bay):
    assert_verified_on_ipvlan(magnum_vm_bay["report"], magnum_vm_bay["bay"])


def test_policy_goes_through_magnums_master_zookeeper_opened_to_the_slaves(magnum_vm_bay, vm_conn):
    """Magnum's master runs ZooKeeper for Mesos (its start-services-master.sh), and its security
    group lets only the masters in on it: bayctl let the slaves' group in on 2181 (once: a
    second prepare adds nothing), and `distribution auto` took that ZooKeeper, as it takes the
    one bayctl's own master states."""
    from bayctl.cloud.heat_client import heat
    from bayctl.create.context import request_from_spec
    from bayctl.create.pipeline import open_provider
    from bayctl.providers.magnum_ports import stack_ports

    bay = magnum_vm_bay["bay"]
    ports = stack_ports(vm_conn, next(f"{s.stack_name}/{s.id}" for s in heat(vm_conn).stacks.list()
                                      if s.stack_name.startswith(BAY)))
    by_ip = {entry["ip_address"]: port for port in ports for entry in port.fixed_ips}
    [master_group] = by_ip[bay.master.private_ip].security_group_ids
    slave_groups = {g for slave in bay.slaves for g in by_ip[slave.private_ip].security_group_ids}
    rules = vm_conn.network.get_security_group(master_group).security_group_rules
    opened = {r["remote_group_id"] for r in rules if r["direction"] == "ingress" and r["protocol"] == "tcp"
              and (r["port_range_min"], r["port_range_max"]) == (2181, 2181)}
    assert opened == slave_groups and master_group not in slave_groups
    provider, _conn = open_provider("magnum", bay.spec, **magnum_vm_bay["options"])  # as the bay's user
    assert provider.prepare_nodes(bay.state.ref, bay.nodes, request_from_spec(bay.spec)) is None  # all open
    assert provider.master_zookeeper(bay.state.ref) == f"{bay.master.private_ip}:2181"
    assert_policy_goes_through_the_masters_zookeeper(magnum_vm_bay, WEB_DB, STARS)


def test_magnums_scripts_configured_mesos_and_the_slave_uses_bayctls_per_node_cni_config(magnum_vm_bay):
    """What the stand-in Mesos packages recorded inside the VMs: Magnum's fragments set the
    flags (cluster name, ZooKeeper, addresses from eth0), and the slave's agent still runs
    network/cni with /etc/bayctl/cni, where bayctl-hostgw wrote THIS slave's own subnet."""
    bay = magnum_vm_bay["bay"]
    master = bay.master
    zk = f"zk://{master.private_ip}:2181/mesos"
    flags = recorded_start(BAY, master.name, "mesos-master")["flags"]
    assert flags["zk"] == zk and flags["ip"] == master.private_ip
    assert flags["cluster"] == BAY  # Magnum's CLUSTER_NAME, through the deployment's input
    assert recorded_start(BAY, master.name, "marathon")["flags"]["master"] == zk
    for slave in bay.slaves:
        flags = assert_slave_mesos_uses_bayctl_cni(bay, slave)
        assert flags["master"] == zk and flags["ip"] == slave.private_ip  # configure-mesos-slave.sh


def test_delete_leaves_no_cluster_vm_or_port(magnum_vm_bay, cloud_tier, magnum_real, vm_conn, vm_network):
    from bayctl import api

    vms = [vm_network.vms[s.id] for s in vm_conn.compute.servers()]
    assert len(vms) == 1 + SLAVES
    assert api.delete_bay(BAY, provider_options=magnum_vm_bay["options"])
    assert vm_network.vms == {} and list(vm_conn.compute.servers()) == []
    for vm in vms:
        assert vm.proc.poll() is not None, "a qemu process outlived its server"
        assert not os.path.exists(vm.directory), f"{vm.directory}: its disk is left"
    project = vm_conn.current_project_id
    left = [p for p in cloud_tier.emulators.neutron.ports.values() if p["project_id"] == project]
    assert left == [], left
    assert api.find_bay(BAY) is None

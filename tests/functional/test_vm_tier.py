"""The VM tier (issue 13): servers are real qemu VMs booted from the session's built image.

The REAL Heat renders the user data and creates REAL OS::Nova::Server resources; the Nova
emulator boots each as a qemu VM (TCG) from the image in the REAL Glance, with that user
data on a config drive (emulators/vms.py); the node runs it under cloud-init and signals
its wait condition to Heat from inside the guest. Minutes per boot under emulation.
"""

import json
import os
import subprocess

import pytest

pytestmark = [pytest.mark.cloud, pytest.mark.vm]

ONE_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vm_one_server.yaml")


def _fingerprint(public_key_path):
    out = subprocess.run(["ssh-keygen", "-lf", public_key_path], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1]


@pytest.mark.timeout(1800)  # the session's image build may fall to this test, then a TCG boot
def test_a_vm_boots_the_image_with_heats_user_data_and_signals_its_wait_condition(
        vm_conn, vm_image, vm_flavor, vm_keypair, vm_servers):
    from bayctl.cloud.heat_client import heat, load_template
    from bayctl.cloud.stacks import wait_for_stack

    key_name, key_path, _public = vm_keypair
    hc = heat(vm_conn)
    template, files, _ = load_template(ONE_SERVER)
    created = hc.stacks.create(stack_name="vm-one", template=template, files=files, disable_rollback=True,
                               parameters={"image": vm_image, "flavor": vm_flavor, "key_name": key_name})
    ref = f"vm-one/{created['stack']['id']}"
    try:
        wait_for_stack(vm_conn, ref, timeout=1800, interval=5)
        outputs = {o["output_key"]: o["output_value"] for o in hc.stacks.get(ref).outputs}
        server_id = outputs["server_id"]
        vm = vm_servers.vms[server_id]
        assert vm.proc.poll() is None, "the VM stopped after signalling"
        # The data the node signalled from inside the guest: {"1": "k=v;k=v;..."}
        report = outputs["node_report"]
        [report] = (json.loads(report) if isinstance(report, str) else report).values()
        facts = dict(item.split("=", 1) for item in report.split(";"))
        server = vm_conn.compute.get_server(server_id)
        assert facts["hostname"] == server.name  # meta_data.json from the config drive
        assert facts["config_drive"] == "yes"
        assert facts["key"] == _fingerprint(key_path + ".pub")  # the Nova keypair, via the drive
        assert facts["agent"] == "active"  # the image's node agent, fail-closed until seeded
        assert facts["ipvlan"] == "yes"  # the guest kernel can give containers ipvlan links
    finally:
        hc.stacks.delete(ref)
        wait_for_stack(vm_conn, ref, action="DELETE", timeout=600, interval=2)
    assert vm_servers.vms == {}, "Heat deleted the stack but a VM is left"
    assert not os.path.exists(vm.directory)
    assert vm.proc.poll() is not None


WEB_DB = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "policy", "examples", "web-db.yaml")


@pytest.mark.timeout(3600)  # the master boots and signals before the slaves start: two TCG boots
def test_a_heat_bay_of_vms_is_created_seeded_verified_and_deleted(
        cloud_tier, cloud_conn, vm_conn, vm_image, vm_flavor, vm_keypair, vm_network, tmp_path, monkeypatch):
    """The production templates with environments/openstack.yaml (real OS::Nova::Server and
    OS::Neutron::* resources): one master and two slaves boot as VMs, run their fragments and
    signal; bayctl collects them, waits for their agents, seeds over SSH to their floating IPs
    and verifies the matrix; delete leaves no VM, tap or port."""
    import yaml
    from cloudtier.tier import VM_PROJECT
    from fixtures_vm import EXTERNAL_NETWORK

    from bayctl import api
    from bayctl.create.context import Status
    from bayctl.providers.heat import templates_dir

    key_name, key_path, _public = vm_keypair
    auth = dict(cloud_tier.user_auth(VM_PROJECT, cloud_tier.demo_password, VM_PROJECT))
    region = auth.pop("region_name")
    auth.pop("identity_api_version")
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"bayctl-vm": {"auth": auth, "region_name": region,
                                                               "identity_api_version": 3}}}))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    monkeypatch.setenv("BAYCTL_STATE_DIR", str(tmp_path / "bays"))
    options = {"environments": [os.path.join(templates_dir(), "environments", "openstack.yaml")],
               "poll_interval": 5}
    lines = []

    def progress(line):
        lines.append(line)
        print(line, flush=True)

    name = "vmbay"
    try:
        bay = api.create_bay(name, provider="heat", slaves=2, image=vm_image, flavor=vm_flavor,
                             keypair=key_name,
                             external_network=EXTERNAL_NETWORK, cloud="bayctl-vm", ssh_user="debian",
                             ssh_key=key_path, policy=WEB_DB, timeout="2400", status=Status(progress),
                             provider_options=options)
        assert (bay.status, bay.provider) == ("READY", "heat"), lines
        neutron = cloud_tier.emulators.neutron
        # Every node is a VM bound to a Neutron port whose data is what the templates asked for.
        servers = {s.name: s for s in vm_conn.compute.servers()}
        nodes = bay.nodes
        for node in nodes:
            server = servers[node.name]
            vm = vm_network.vms[server.id]
            assert vm.proc.poll() is None
            [port] = [p for p in neutron.ports.values() if p["device_id"] == server.id]
            assert port["fixed_ips"][0]["ip_address"] == node.private_ip
            assert port["status"] == "ACTIVE" and port["security_groups"]
        for slave in bay.slaves:
            [port] = [p for p in neutron.ports.values() if p["device_id"] == servers[slave.name].id]
            assert port["allowed_address_pairs"] == [{"ip_address": bay.state.spec.get("container_cidr")
                                                      or "10.100.0.0/16"}]
        report = api.verify_bay(name)
        assert report.pairs and report.ok, [m.describe() for m in report.mismatches]
    finally:
        api.delete_bay(name, provider_options=options)
    assert vm_network.vms == {}
    assert not [p for p in cloud_tier.emulators.neutron.ports.values() if p["project_id"] != ""
                and p["name"].startswith(name)]

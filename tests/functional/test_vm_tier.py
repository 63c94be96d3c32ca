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

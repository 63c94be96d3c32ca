"""A failed server diagnosed with Nova's own fault: the REAL Heat engine's OS::Nova::Server
resources (python-novaclient inside heat-engine) against the tier's Nova emulator, the image
in the tier's REAL Glance, and bayctl's waiter + diagnosis on the stack Heat built.
"""

import os

import pytest

from bayctl.errors import StackFailed

pytestmark = pytest.mark.cloud

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hp_nova_server.yaml")
IMAGE = "hp-nova-image"
FLAVORS = {"ok_flavor": "hp-small", "failing_flavor": "hp-no-host"}  # "no-host": Nova's NoValidHost


@pytest.fixture(scope="module")
def hp_image(cloud_conn, tmp_path_factory):
    image = cloud_conn.image.find_image(IMAGE, ignore_missing=True)
    if image is None:
        data = tmp_path_factory.mktemp("hp-image") / "node.raw"
        data.write_bytes(b"\0" * 4096)
        image = cloud_conn.create_image(IMAGE, filename=str(data), disk_format="raw", container_format="bare",
                                        os_distro="debian", wait=True)
    yield image.id
    cloud_conn.image.delete_image(image, ignore_missing=True)


@pytest.fixture(scope="module")
def hp_flavors(cloud_conn):
    made = []
    for name in FLAVORS.values():
        flavor = cloud_conn.compute.find_flavor(name, ignore_missing=True)
        if flavor is None:
            flavor = cloud_conn.compute.create_flavor(name=name, ram=512, vcpus=1, disk=1)
        made.append(flavor)
    yield dict(FLAVORS)
    for flavor in made:
        cloud_conn.compute.delete_flavor(flavor, ignore_missing=True)


def test_failed_server_is_diagnosed_with_the_nova_fault(cloud_conn, hp_image, hp_flavors):
    from openstack import exceptions as sdk_exc

    from bayctl.cloud.diagnosis import stack_failures
    from bayctl.cloud.heat_client import heat, load_template
    from bayctl.cloud.stacks import wait_for_stack

    hc = heat(cloud_conn)
    template, files, _ = load_template(TEMPLATE)
    created = hc.stacks.create(stack_name="hp-nova-fail", template=template, files=files,
                               parameters={"image": hp_image, **hp_flavors}, disable_rollback=True)
    ref = f"hp-nova-fail/{created['stack']['id']}"
    ok_server = None
    try:
        with pytest.raises(StackFailed) as info:
            wait_for_stack(cloud_conn, ref, timeout=300, interval=1)
        err = info.value
        # The deepest failed resource (never the group), its type, and Heat's reason ...
        assert (err.resource, err.resource_type) == ("group.0", "OS::Nova::Server")
        assert "ResourceInError" in err.reason and "Went to status ERROR" in err.reason
        # ... and the fault as Nova itself records it, in the one-line message the user sees.
        assert "[nova fault 500: No valid host was found. There are not enough hosts available.]" in str(err)
        assert "\n" not in str(err)

        [failure] = stack_failures(cloud_conn, ref)
        server = cloud_conn.compute.get_server(failure.physical_id)
        assert server.status == "ERROR" and server.name == "hp-node-0"
        assert (failure.fault, failure.fault_code) == (server.fault["message"], server.fault["code"])
        assert not failure.server_gone

        # The server with a flavor that fits went through BUILD to ACTIVE, and Heat completed it.
        ok = hc.resources.get(ref, "ok")
        ok_server = ok.physical_resource_id
        assert ok.resource_status == "CREATE_COMPLETE"
        assert cloud_conn.compute.get_server(ok_server).status == "ACTIVE"

        # Nova forgets the failed server: the diagnosis still names the resource and Heat's
        # reason, shows no fault, and says why.
        cloud_conn.compute.delete_server(failure.physical_id)
        [gone] = stack_failures(cloud_conn, ref)
        assert (gone.path, gone.resource_type, gone.reason) == (failure.path, failure.resource_type,
                                                                failure.reason)
        assert gone.server_gone and gone.fault == "" and gone.fault_code is None
        assert gone.line().endswith(f"[server {failure.physical_id} is gone from Nova: no fault to show]")
        assert "\n" not in gone.line()
    finally:
        hc.stacks.delete(ref)
        status = wait_for_stack(cloud_conn, ref, action="DELETE", timeout=300, interval=1)
    assert status.status == "DELETE_COMPLETE"
    # Heat deleted its servers from Nova, the one Nova had already forgotten included.
    assert ok_server is not None
    with pytest.raises(sdk_exc.NotFoundException):
        cloud_conn.compute.get_server(ok_server)

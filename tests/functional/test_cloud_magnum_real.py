"""The magnum provider against REAL Magnum (api + conductor from PyPI) with the real tier.

Magnum's API takes the cluster template and the cluster, its conductor renders the stack from
Magnum's OWN mesos_ubuntu_v1 templates and creates it in the real Heat (whose global
environment stands in for Nova/Neutron resources by name), syncs the cluster's status and
addresses from it, and deletes it again. Nothing of Magnum is emulated here.
"""

import pytest

from bayctl.errors import StackFailed
from bayctl.providers import MASTER, SLAVE, BayRequest
from bayctl.providers.magnum import MagnumProvider, MesosNotSupported

pytestmark = pytest.mark.cloud

KEYPAIR, FLAVOR, PUBLIC = "bmr-key", "bmr.small", "bmr-public"
FAIL_FLAVOR = "bayctl-test-fail"  # the server stand-in fails its boot with this flavor


@pytest.fixture(scope="module")
def real(magnum_real, cloud_conn):
    """The real Magnum and a connection to it, with the Nova/Neutron things Magnum validates."""
    if hasattr(magnum_real.tier, "use_magnum_standins"):  # the VM tier may have switched them off
        magnum_real.tier.use_magnum_standins(True)
    conn = cloud_conn
    if conn.compute.find_keypair(KEYPAIR) is None:
        conn.compute.create_keypair(name=KEYPAIR)
    for name in (FLAVOR, FAIL_FLAVOR):
        if conn.compute.find_flavor(name) is None:
            conn.compute.create_flavor(name=name, vcpus=1, ram=1024, disk=10)
    if conn.network.find_network(PUBLIC) is None:
        conn.network.create_network(name=PUBLIC, is_router_external=True)
    debian = conn.image.create_image(name="bmr-debian", disk_format="raw", container_format="bare",
                                     data=b"\0" * 4096, os_distro="debian", allow_duplicates=True, wait=True)
    magnum_conn = magnum_real.connect()
    yield magnum_real, magnum_conn
    magnum_conn.close()
    conn.image.delete_image(debian, ignore_missing=True)


def _request(name, image, **kw):
    values = dict(name=name, slaves=2, image=image, keypair=KEYPAIR, master_flavor=FLAVOR,
                  slave_flavor=FLAVOR, external_network=PUBLIC, timeout=600,
                  labels={"mesos_slave_isolation": "cgroups/cpu,cgroups/mem"})
    values.update(kw)
    return BayRequest(**values)


def _template_names(provider):
    return [t.name for t in provider.mc.cluster_templates.list()]


def test_real_magnum_builds_the_mesos_stack_and_the_provider_follows_it(real):
    magnum, conn = real
    provider = MagnumProvider(conn, poll_interval=2)
    assert provider.legacy is False  # real Magnum has /v1/clustertemplates
    name = "bmr-bay"
    ref = provider.create(_request(name, magnum.image))
    try:
        seen = []
        status = provider.wait(ref, progress=seen.append, timeout=600)
        assert status.status == "CREATE_COMPLETE"
        # Progress came from the events of the stack Magnum's conductor made, nested servers too.
        assert any("mesos-slave" in p.message for p in seen), [p.message for p in seen][:20]
        nodes = provider.nodes(ref)
        assert [n.role for n in nodes] == [MASTER, SLAVE, SLAVE]
        assert all(n.private_ip.startswith("10.0.0.") for n in nodes)
        assert all(n.public_ip.startswith("198.51.100.") for n in nodes)
        cluster = provider.mc.clusters.get(ref)
        # Magnum synced the addresses from the stack outputs into its own record.
        assert sorted(cluster.node_addresses) == sorted(n.public_ip for n in nodes[1:])
        assert cluster.master_addresses == [nodes[0].public_ip]
        from bayctl.cloud.heat_client import heat

        stack = heat(conn).stacks.get(cluster.stack_id)
        # Magnum's own mesoscluster.yaml, with the labels as its parameters.
        assert stack.parameters["mesos_slave_isolation"] == "cgroups/cpu,cgroups/mem"
        assert stack.parameters["number_of_slaves"] == "2"
        assert "Mesos cluster" in stack.description
        assert provider.create(_request(name, magnum.image)) == ref  # resumes: no second cluster
        assert [b.name for b in provider.list()].count(name) == 1
        assert "bayctl-" + name in _template_names(provider)
    finally:
        provider.delete(ref, timeout=300)
    assert name not in [b.name for b in provider.list()]
    assert "bayctl-" + name not in _template_names(provider)


def test_real_magnum_refuses_mesos_on_a_non_ubuntu_image(real):
    _magnum, conn = real
    provider = MagnumProvider(conn, poll_interval=2)
    with pytest.raises(MesosNotSupported) as info:
        provider.create(_request("bmr-debian-bay", "bmr-debian"))
    message = str(info.value)
    assert "Cluster type (vm, debian, mesos) not supported" in message, message
    assert "--provider heat" in message and "\n" not in message
    assert "bayctl-bmr-debian-bay" not in _template_names(provider)
    assert "bmr-debian-bay" not in [b.name for b in provider.list()]


def test_real_magnum_failed_cluster_is_diagnosed_through_its_stack(real):
    magnum, conn = real
    provider = MagnumProvider(conn, poll_interval=2)
    name = "bmr-fail"
    ref = provider.create(_request(name, magnum.image, slaves=1, slave_flavor=FAIL_FLAVOR))
    try:
        with pytest.raises(StackFailed) as info:
            provider.wait(ref, timeout=600)
        assert info.value.resource == "mesos_slaves.0.mesos-slave.boot", str(info.value)
        assert info.value.resource_type == "OS::Heat::TestResource"
        assert f"cluster {name}" in str(info.value)
        with pytest.raises(StackFailed, match="mesos_slaves.0.mesos-slave.boot"):
            provider.diagnose(ref)
    finally:
        provider.delete(ref, timeout=300)
    assert name not in [b.name for b in provider.list()]

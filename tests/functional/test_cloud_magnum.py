"""The magnum provider against the emulated Magnum, whose conductor builds REAL Heat stacks.

Real Magnum (10.0.0, the last release that builds Mesos clusters; 14.0.0+ refuse coe=mesos)
runs in test_cloud_magnum_real.py. The emulator covers what one real release cannot: the
legacy baymodels/bays API and the releases that refuse Mesos. It follows Magnum's API
reference and validates against the real Glance and emulated Nova/Neutron.
"""

import pytest

from bayctl.errors import StackFailed
from bayctl.providers import MASTER, SLAVE, BayRequest, get_provider
from bayctl.providers.magnum import MagnumProvider, MesosNotSupported

pytestmark = pytest.mark.cloud


@pytest.fixture(scope="module")
def magnum(cloud_tier, cloud_conn):
    emulators = getattr(cloud_tier, "emulators", None)
    if emulators is None or emulators.magnum is None:
        pytest.skip("needs the in-process Magnum emulator (not available with BAYCTL_CLOUD_TIER_REUSE)")
    conn = cloud_conn
    if conn.compute.find_keypair("bcl-mg-key") is None:
        conn.compute.create_keypair(name="bcl-mg-key")
    for name in ("bcl.mg.small", "bayctl-test-fail"):
        if conn.compute.find_flavor(name) is None:
            conn.compute.create_flavor(name=name, vcpus=1, ram=1024, disk=10)
    if conn.network.find_network("bcl-mg-public") is None:
        conn.network.create_network(name="bcl-mg-public", is_router_external=True)
    images = [conn.image.create_image(name=name, disk_format="raw", container_format="bare",
                                      data=b"\0" * 4096, os_distro=distro, allow_duplicates=True, wait=True)
              for name, distro in (("bcl-mg-ubuntu", "ubuntu"), ("bcl-mg-debian", "debian"))]
    emulator = emulators.magnum
    yield emulator
    emulator.configure(release="10.0.0", legacy=False)
    for image in images:
        conn.image.delete_image(image, ignore_missing=True)


def _request(name, **kw):
    values = dict(name=name, slaves=2, image="bcl-mg-ubuntu", keypair="bcl-mg-key",
                  master_flavor="bcl.mg.small", slave_flavor="bcl.mg.small", external_network="bcl-mg-public",
                  timeout=600,
                  labels={"mesos_slave_isolation": "cgroups/cpu,cgroups/mem"})
    values.update(kw)
    return BayRequest(**values)


def _templates(provider):
    return [t.name for t in provider.mc.cluster_templates.list()]


@pytest.mark.parametrize("legacy", [False, True], ids=["clusters", "bays"])
def test_cluster_create_progress_nodes_delete(magnum, cloud_conn, legacy):
    magnum.configure(release="10.0.0", legacy=legacy)
    provider = get_provider("magnum", cloud_conn, poll_interval=1)
    assert provider.legacy is legacy
    name = "bcl-mg-bay" if not legacy else "bcl-mg-oldbay"
    ref = provider.create(_request(name))
    try:
        seen = []
        status = provider.wait(ref, progress=seen.append, timeout=600)
        assert status.status == "CREATE_COMPLETE"
        assert any(p.message.startswith("slaves.1.server") for p in seen)  # the stack's events, nested
        nodes = provider.nodes(ref)
        assert [n.role for n in nodes] == [MASTER, SLAVE, SLAVE]
        assert all(n.private_ip.startswith("10.0.0.") for n in nodes)
        assert all(n.public_ip.startswith("198.51.100.") for n in nodes)
        assert provider.create(_request(name)) == ref  # resumes, no second cluster
        assert [b.name for b in provider.list()].count(name) == 1
        if not legacy:
            # Labels reached the stack Magnum built (the conductor passes them as parameters).
            cluster = provider.mc.clusters.get(ref)
            from bayctl.cloud.heat_client import heat

            stack = heat(cloud_conn).stacks.get(cluster.stack_id)
            assert stack.parameters["mesos_slave_isolation"] == "cgroups/cpu,cgroups/mem"
            assert "bayctl-" + name in _templates(provider)
    finally:
        provider.delete(ref, timeout=300)
    assert name not in [b.name for b in provider.list()]
    if not legacy:
        assert "bayctl-" + name not in _templates(provider)  # the template bayctl made went with it


@pytest.mark.parametrize("release", ["15.0.2", "16.0.0"])  # the API refuses it / no driver at all
def test_magnum_without_mesos_says_so_and_suggests_heat(magnum, cloud_conn, release):
    magnum.configure(release=release, legacy=False)
    provider = MagnumProvider(cloud_conn, poll_interval=1)
    with pytest.raises(MesosNotSupported) as info:
        provider.create(_request("bcl-mg-nomesos"))
    assert "does not support Mesos" in str(info.value) and "--provider heat" in str(info.value)
    assert "\n" not in str(info.value)
    assert "bayctl-bcl-mg-nomesos" not in _templates(provider)
    assert "bcl-mg-nomesos" not in [b.name for b in provider.list()]
    # auto follows the cloud's answer
    chosen = get_provider("auto", cloud_conn, request=_request("bcl-mg-nomesos"))
    assert type(chosen).__name__ == "HeatProvider"
    magnum.configure(release="10.0.0")
    chosen = get_provider("auto", cloud_conn, request=_request("bcl-mg-auto"))
    assert type(chosen).__name__ == "MagnumProvider"
    provider._delete_own_template(next(t.uuid for t in provider.mc.cluster_templates.list()
                                       if t.name == "bayctl-bcl-mg-auto"))


def test_mesos_driver_needs_an_ubuntu_image(magnum, cloud_conn):
    magnum.configure(release="10.0.0", legacy=False)
    provider = MagnumProvider(cloud_conn, poll_interval=1)
    with pytest.raises(MesosNotSupported, match=r"Cluster type \(vm, debian, mesos\) not supported"):
        provider.create(_request("bcl-mg-debian", image="bcl-mg-debian"))


def test_failed_cluster_is_diagnosed_through_its_stack(magnum, cloud_conn):
    magnum.configure(release="10.0.0", legacy=False)
    provider = MagnumProvider(cloud_conn, poll_interval=1)
    ref = provider.create(_request("bcl-mg-fail", slaves=1, slave_flavor="bayctl-test-fail"))
    try:
        with pytest.raises(StackFailed) as info:
            provider.wait(ref, timeout=600)
        assert info.value.resource == "slaves.0.server.boot"
        assert info.value.resource_type == "OS::Heat::TestResource"
        assert "cluster bcl-mg-fail" in str(info.value)
        with pytest.raises(StackFailed, match="slaves.0.server.boot"):
            provider.diagnose(ref)
    finally:
        provider.delete(ref, timeout=300)

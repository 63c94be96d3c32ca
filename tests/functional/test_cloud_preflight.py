"""Pre-flight against the emulated Nova/Neutron and the REAL Glance: every problem one line,
nothing created when it fails."""

import os
import subprocess
import sys

import pytest

from bayctl.cloud.images import upload_image
from bayctl.cloud.preflight import run_preflight
from bayctl.errors import CloudError
from bayctl.providers import BayRequest

pytestmark = pytest.mark.cloud


@pytest.fixture(scope="module")
def cloud_ready(cloud_conn, tmp_path_factory):
    """What a bay needs, made the way an operator would (keypair, flavors, external network, image)."""
    conn = cloud_conn
    kp = conn.compute.find_keypair("bcl-pf-key") or conn.compute.create_keypair(name="bcl-pf-key")
    for name, vcpus, ram in (("bcl.pf.master", 2, 4096), ("bcl.pf.slave", 4, 8192)):
        if conn.compute.find_flavor(name) is None:
            conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=20)
    if conn.network.find_network("bcl-pf-public") is None:
        conn.network.create_network(name="bcl-pf-public", is_router_external=True)
    if conn.network.find_network("bcl-pf-internal") is None:
        conn.network.create_network(name="bcl-pf-internal")
    path = tmp_path_factory.mktemp("pf") / "pf.raw"
    path.write_bytes(b"\0" * 8192)
    good = upload_image(conn, str(path), name="bcl-pf-image", os_distro="debian", build_inputs="pf-good",
                        timeout=120, wait_interval=0.5).image
    bare = conn.image.create_image(name="bcl-pf-nodistro", disk_format="raw", container_format="bare",
                                   data=b"\0" * 4096, allow_duplicates=True, wait=True)
    yield {"keypair": kp.name, "image": good.name}
    conn.image.delete_image(good, ignore_missing=True)
    conn.image.delete_image(bare, ignore_missing=True)


def _request(**kw):
    values = dict(name="bcl-pf", slaves=3, image="bcl-pf-image", keypair="bcl-pf-key",
                  master_flavor="bcl.pf.master", slave_flavor="bcl.pf.slave",
                  external_network="bcl-pf-public")
    values.update(kw)
    return BayRequest(**values)


def test_a_ready_cloud_passes_with_quota_headroom(cloud_conn, cloud_ready):
    checks = {c.name: c.detail for c in run_preflight(cloud_conn, _request())}
    assert checks["keypair"] == "bcl-pf-key"
    assert "os_distro=debian" in checks["image"]
    assert checks["quota servers"].startswith("4 needed")
    assert checks["quota cores"].startswith("14 needed")  # 2 + 3 x 4
    assert checks["quota RAM (MB)"].startswith("28672 needed")
    assert checks["quota floating IPs"].startswith("4 needed")


def test_every_problem_is_one_line_and_nothing_is_created(cloud_conn, cloud_ready):
    images_before = sorted(i.id for i in cloud_conn.image.images())
    with pytest.raises(CloudError) as info:
        run_preflight(cloud_conn, _request(keypair="bcl-pf-nokey", image="bcl-pf-nodistro",
                                           slave_flavor="bcl.pf.none", external_network="bcl-pf-internal"))
    lines = str(info.value).splitlines()
    assert "4 problem(s)" in lines[0] and "nothing was created" in lines[0]
    problems = [line.strip() for line in lines[1:]]
    assert problems == [
        "keypair 'bcl-pf-nokey': not found (openstack keypair create --public-key ... bcl-pf-nokey)",
        "image 'bcl-pf-nodistro': has no os_distro property (Magnum picks its driver by it; "
        "bayctl image upload sets it)",
        "slave flavor 'bcl.pf.none': not found",
        "external network 'bcl-pf-internal': is not external (router:external is false); floating IPs "
        "cannot come from it",
    ]
    assert sorted(i.id for i in cloud_conn.image.images()) == images_before
    assert list(cloud_conn.orchestration.stacks()) == [] or all(
        not s.name.startswith("bcl-pf") for s in cloud_conn.orchestration.stacks())


def test_quota_shortfalls_name_what_is_missing(cloud_conn, cloud_ready):
    project = cloud_conn.current_project_id
    cloud_conn.compute.put(f"/os-quota-sets/{project}", json={"quota_set": {"instances": 3, "cores": 10}})
    cloud_conn.network.put(f"/quotas/{project}", json={"quota": {"floatingip": 2}})
    try:
        with pytest.raises(CloudError) as info:
            run_preflight(cloud_conn, _request())
        problems = [line.strip() for line in str(info.value).splitlines()[1:]]
        assert problems == ["quota servers: 4 needed, 3 of 3 free", "quota cores: 14 needed, 10 of 10 free",
                            "quota floating IPs: 4 needed, 2 of 2 free"]
    finally:
        cloud_conn.compute.put(f"/os-quota-sets/{project}",
                               json={"quota_set": {"instances": 10, "cores": 20}})
        cloud_conn.network.put(f"/quotas/{project}", json={"quota": {"floatingip": 50}})


def test_cli_prints_problems_without_a_traceback(cloud_tier, cloud_ready, clouds_yaml):
    res = subprocess.run([sys.executable, "-m", "bayctl.cli.main", "preflight", "--os-cloud", "bayctl-test",
                          "--image", "bcl-pf-image", "--keypair", "bcl-pf-nokey", "--master-flavor",
                          "bcl.pf.master", "--external-network", "bcl-pf-public"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OS_CLIENT_CONFIG_FILE": clouds_yaml})
    assert res.returncode == 1
    assert "keypair 'bcl-pf-nokey': not found" in res.stderr
    assert "Traceback" not in res.stderr

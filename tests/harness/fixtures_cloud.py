"""Session fixtures for the cloud tier: the REAL keystone + glance + heat, started once.

`cloud_tier` starts them (building the tier's virtualenv first if this machine has none) and
also serves the Nova/Neutron/Magnum emulators that keystone's catalog points at. Everything
binds to 127.0.0.1:155xx and is torn down at the end of the session.
"""

import os
import shutil
import tempfile

import pytest

from harness.prereq import require

os.environ.setdefault("OS_CLIENT_CONFIG_FILE", os.devnull)  # never a developer's own clouds.yaml


class ReusedTier:
    """A tier started outside this test run; its auth.json says how to reach it."""

    def __init__(self, path):
        import json

        with open(path) as f:
            data = json.load(f)
        self.auth, self.demo_password, self.timings = data["auth"], data["demo_password"], data["timings"]

    def user_auth(self, username, password, project):
        return dict(self.auth, username=username, password=password, project_name=project)


@pytest.fixture(scope="session")
def cloud_tier():
    require(shutil.which("mariadb-install-db") is not None,
            "needs Debian's mariadb-server (tools/setup.d/50-cloud.sh installs it)")
    try:
        import openstack  # noqa: F401
    except ImportError:
        require(False, "needs openstacksdk (a dependency of bayctl: pip install -e .)")
    from harness.cloudtier import venv
    from harness.cloudtier.emulators_wiring import start_emulators
    from harness.cloudtier.tier import Tier

    reuse = os.environ.get("BAYCTL_CLOUD_TIER_REUSE")
    if reuse:  # a developer's running tier (python -m harness.cloudtier.dev): skip the start-up
        yield ReusedTier(reuse)
        return
    venv.ensure_venv()
    workdir = tempfile.mkdtemp(prefix="bayctl-cloud-", dir="/var/tmp")
    tier = Tier(workdir)
    emulators = None
    try:
        tier.start()
        emulators = start_emulators(tier)
        tier.emulators = emulators
        yield tier
    finally:
        if emulators is not None:
            emulators.stop()
        tier.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def cloud_conn(cloud_tier):
    """An openstacksdk connection as the tier's admin (made through bayctl's own connect)."""
    from bayctl.cloud.connection import connect

    conn = connect(**cloud_tier.auth)
    yield conn
    conn.close()


@pytest.fixture
def clouds_yaml(cloud_tier, tmp_path):
    """A clouds.yaml naming the tier `bayctl-test`; returns its path."""
    import yaml

    auth = dict(cloud_tier.auth)
    region = auth.pop("region_name")
    auth.pop("identity_api_version")
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"bayctl-test": {
        "auth": auth, "region_name": region, "identity_api_version": 3}}}))
    return str(path)


@pytest.fixture
def tier_image(cloud_conn, tmp_path):
    """A (tiny) node image in the tier's real Glance, for the ensure-image step to find."""
    name = "bbc-node-image"
    image = cloud_conn.image.find_image(name, ignore_missing=True)
    if image is None:
        data = tmp_path / "node.raw"
        data.write_bytes(b"\0" * 4096)
        image = cloud_conn.create_image(name, filename=str(data), disk_format="raw", container_format="bare",
                                        os_distro="debian", wait=True)
    yield name
    cloud_conn.image.delete_image(image, ignore_missing=True)

"""Session fixture `magnum_real`: REAL Magnum 10.0.0 api + conductor beside the cloud tier.

Started only for the tests that ask for it (tests/functional/test_cloud_magnum_real.py), once
per session, after `cloud_tier`. It uses the tier's RabbitMQ (`transport_url`) where the tier
has one (else Magnum's api and conductor share one process over fake://) and its MariaDB,
Python 3.8 for Magnum's own virtualenv (tools/setup.d/55-magnum.sh builds it), and a Glance
image with os_distro=ubuntu, which the mesos_ubuntu_v1 driver requires.
"""

import os
import shutil
import tempfile

import pytest

from harness.prereq import require

UBUNTU_IMAGE = "bmr-ubuntu-mesos"


def _transport_url(tier):
    url = os.environ.get("BAYCTL_MAGNUM_TRANSPORT_URL") or getattr(tier, "transport_url", None)
    if not url and os.environ.get("BAYCTL_CLOUD_TIER_REUSE"):
        import json

        with open(os.environ["BAYCTL_CLOUD_TIER_REUSE"]) as f:
            url = json.load(f).get("transport_url")
    return url


def _db_socket(tier):
    socket = getattr(tier, "db_socket", None)
    reuse = os.environ.get("BAYCTL_CLOUD_TIER_REUSE")
    if socket is None and reuse:  # python -m harness.cloudtier.dev writes auth.json into the tier's workdir
        socket = os.path.join(os.path.dirname(reuse), "mariadb", "mysqld.sock")
    return socket


class RealMagnum:
    """What a test needs: the endpoint, connections that use it, the ubuntu image, the log."""

    def __init__(self, service, tier, image):
        self.service = service
        self.tier = tier
        self.endpoint = service.endpoint
        self.image = image

    def connect(self, **auth):
        """A bayctl connection whose container-infra endpoint is the real Magnum."""
        from bayctl.cloud.connection import connect

        return connect(**(auth or self.tier.auth), container_infra_endpoint_override=self.endpoint)

    def log_tail(self, name="magnum-conductor"):
        return self.service.log_tail(name)


@pytest.fixture(scope="session")
def magnum_real(cloud_tier, cloud_conn):
    from harness.cloudtier import magnum_venv
    from harness.cloudtier.magnum_tier import MagnumTier

    try:
        magnum_venv.base_python()
    except magnum_venv.MagnumVenvError as e:
        require(False, str(e))
    transport_url = _transport_url(cloud_tier)  # None: api + conductor in one process (fake://)
    socket = _db_socket(cloud_tier)
    require(socket is not None and os.path.exists(socket), "needs the cloud tier's MariaDB socket")
    magnum_venv.ensure_venv()
    workdir = tempfile.mkdtemp(prefix="bayctl-magnum-", dir="/var/tmp")
    service = MagnumTier(cloud_tier, workdir, transport_url, socket)
    image = cloud_conn.image.find_image(UBUNTU_IMAGE, ignore_missing=True)
    try:
        service.start()
        if image is None:
            path = os.path.join(workdir, "node.raw")
            with open(path, "wb") as f:
                f.write(b"\0" * 4096)
            image = cloud_conn.create_image(UBUNTU_IMAGE, filename=path, disk_format="raw",
                                            container_format="bare", os_distro="ubuntu", wait=True)
        yield RealMagnum(service, cloud_tier, UBUNTU_IMAGE)
    finally:
        service.stop()
        if image is not None:
            cloud_conn.image.delete_image(image, ignore_missing=True)
        shutil.rmtree(workdir, ignore_errors=True)

"""`--upload`: a built node image goes to the REAL Glance of the test tier once per inputs digest."""

import subprocess

import pytest
from harness.prereq import require_tools

from bayctl.cloud.images import INPUTS_PROPERTY
from bayctl.image.builder import ImageBuild
from bayctl.image.upload import upload

pytestmark = pytest.mark.cloud


def small_image(tmp_path, digest):
    """A real (empty) qcow2 standing for a build's output, with its build record's fields."""
    require_tools("qemu-img")
    path = tmp_path / "bim-node.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
    return ImageBuild(path=str(path), image_format="qcow2", distro="debian-minimal", release="bookworm",
                      inputs_digest=digest, reused=False, seconds=0.0, log_path=None, sha256="",
                      size=path.stat().st_size)


def test_image_upload_tags_inputs_and_os_distro_then_reuses(cloud_conn, tmp_path):
    image = small_image(tmp_path, "ab" * 32)
    first = upload(cloud_conn, image, "bim-node-upload", timeout=120)
    try:
        glance = first.image
        assert not first.reused and glance.status == "active"
        assert (glance.disk_format, glance.os_distro) == ("qcow2", "debian")
        assert glance.properties[INPUTS_PROPERTY] == "bayctl-image:" + "ab" * 32

        again = upload(cloud_conn, image, "bim-node-upload", timeout=120)
        assert again.reused and again.image.id == glance.id
    finally:
        cloud_conn.image.delete_image(first.image, ignore_missing=True)

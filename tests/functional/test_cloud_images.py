"""Glance uploads against the REAL glance of the test tier."""

import io
import os
import subprocess

import pytest
from harness.prereq import require_tools

from bayctl.cloud.images import INPUTS_PROPERTY, file_digest, find_by_inputs, upload_image
from bayctl.errors import ImageError

pytestmark = pytest.mark.cloud


def _qcow2(path, size="1M"):
    # Glance inspects the data against disk_format: a qcow2 must really be one.
    require_tools("qemu-img")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return str(path)


def _image_file(path, size, seed=b"bayctl"):
    """A raw disk image of `size` bytes (Glance's inspector sees raw data)."""
    block = (seed * (4096 // len(seed) + 1))[:4096]
    with open(path, "wb") as f:
        for _ in range(size // 4096):
            f.write(block)
    return str(path)


def test_upload_sets_formats_distro_and_inputs_then_reuses(cloud_conn, tmp_path):
    path = _qcow2(tmp_path / "bay.qcow2")
    first = upload_image(cloud_conn, path, name="bcl-img-reuse", os_distro="debian", timeout=120,
                         wait_interval=0.5)
    try:
        image = first.image
        assert not first.reused
        assert image.status == "active"
        assert (image.disk_format, image.container_format, image.os_distro) == ("qcow2", "bare", "debian")
        assert image.properties[INPUTS_PROPERTY] == file_digest(path)
        assert image.size == os.path.getsize(path)

        again = upload_image(cloud_conn, path, name="bcl-img-reuse", timeout=120)
        assert again.reused and again.image.id == image.id
        assert len(find_by_inputs(cloud_conn, file_digest(path))) == 1
    finally:
        cloud_conn.image.delete_image(first.image, ignore_missing=True)


def test_explicit_build_inputs_identify_the_image(cloud_conn, tmp_path):
    a = _image_file(tmp_path / "a.raw", 8192, b"inputs-a")
    result = upload_image(cloud_conn, a, name="bcl-img-inputs", build_inputs="elements=mesos,bayctl-node;v=1",
                          timeout=120, wait_interval=0.5)
    try:
        assert result.image.disk_format == "raw"
        # Another file built from the same declared inputs is the same image: not uploaded again.
        b = _image_file(tmp_path / "b.raw", 8192, b"inputs-b")
        assert upload_image(cloud_conn, b, name="x", build_inputs="elements=mesos,bayctl-node;v=1").reused
    finally:
        cloud_conn.image.delete_image(result.image, ignore_missing=True)


def test_quota_refusal_is_clear_and_leaves_no_image(cloud_tier, cloud_conn, tmp_path):
    from harness.cloudtier.tier import GLANCE_USER_QUOTA_MB

    path = _image_file(tmp_path / "big.raw", (GLANCE_USER_QUOTA_MB + 1) * 1024 * 1024, b"quota")
    with pytest.raises(ImageError, match="storage quota exceeded") as info:
        upload_image(cloud_conn, path, name="bcl-img-quota", timeout=120)
    assert "\n" not in str(info.value)
    assert [i for i in cloud_conn.image.images(name="bcl-img-quota")] == []


def test_permission_refusal_for_a_reader(cloud_tier, tmp_path):
    from bayctl.cloud.connection import connect

    conn = connect(**cloud_tier.user_auth("viewer", cloud_tier.demo_password, "demo"))
    path = _image_file(tmp_path / "p.raw", 4096, b"perm")
    with pytest.raises(ImageError, match="not permitted"):
        upload_image(conn, path, name="bcl-img-perm", timeout=60)
    conn.close()


class _DyingFile(io.FileIO):
    """A file whose reads fail part-way, as when the build's disk goes away mid-upload."""

    def __init__(self, path, fail_after):
        super().__init__(path, "rb")
        self._left = fail_after

    def read(self, n=-1):
        if self._left <= 0:
            raise OSError(5, "Input/output error")
        data = super().read(min(n if n and n > 0 else self._left, self._left))
        self._left -= len(data)
        return data


def test_killed_upload_leaves_no_half_image(cloud_conn, tmp_path, monkeypatch):
    import builtins

    import bayctl.cloud.images as images

    path = _image_file(tmp_path / "dying.raw", 256 * 1024, b"dying")
    real_open = builtins.open

    def dying_open(name, mode="r", *a, **kw):
        if name == path and "b" in mode:
            return _DyingFile(path, 64 * 1024)
        return real_open(name, mode, *a, **kw)

    monkeypatch.setattr(images, "open", dying_open, raising=False)
    with pytest.raises(ImageError, match="partial image was deleted|upload"):
        upload_image(cloud_conn, path, name="bcl-img-dying", build_inputs="dying-v1", timeout=60)
    monkeypatch.undo()
    assert list(cloud_conn.image.images(name="bcl-img-dying")) == []
    # A later upload of the same inputs works from scratch.
    result = upload_image(cloud_conn, path, name="bcl-img-dying", build_inputs="dying-v1", timeout=120,
                          wait_interval=0.5)
    try:
        assert result.image.status == "active" and not result.reused
    finally:
        cloud_conn.image.delete_image(result.image, ignore_missing=True)


def test_missing_file_is_one_line(cloud_conn, tmp_path):
    with pytest.raises(ImageError, match="no such image file"):
        upload_image(cloud_conn, os.path.join(tmp_path, "nope.qcow2"), name="x")


def test_data_not_matching_the_declared_format_is_refused_cleanly(cloud_conn, tmp_path):
    path = _image_file(tmp_path / "claims.qcow2", 8192, b"notqcow2")  # raw bytes named .qcow2
    with pytest.raises(ImageError, match="does not match"):
        upload_image(cloud_conn, path, name="bcl-img-mismatch", build_inputs="mismatch-v1", timeout=60)
    assert list(cloud_conn.image.images(name="bcl-img-mismatch")) == []


def test_cli_upload_then_reuse(cloud_tier, clouds_yaml, tmp_path):
    import json
    import sys

    path = _image_file(tmp_path / "cli.raw", 8192, b"cli-upload")
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": clouds_yaml}
    argv = [sys.executable, "-m", "bayctl.cli.main", "image", "upload", path, "--name", "bcl-img-cli",
            "--os-cloud", "bayctl-test", "-f", "json"]
    first = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    shown = json.loads(first.stdout)
    second = json.loads(subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120).stdout)
    assert (shown["status"], shown["os_distro"], shown["reused"]) == ("active", "debian", False)
    assert second["reused"] is True and second["id"] == shown["id"]
    from bayctl.cloud.connection import connect

    conn = connect(**cloud_tier.auth)
    conn.image.delete_image(shown["id"], ignore_missing=True)
    conn.close()

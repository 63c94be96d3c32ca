"""bayctl's elements pass DIB's own checks, and what the inputs digest does and does not cover.

These run diskimage-builder's Python and dib-lint, never a build (no root, no network).
"""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from harness.prereq import require, require_tools

from bayctl.errors import ImageError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ELEMENTS = os.path.join(REPO, "bayctl", "share", "elements")
TEST_ELEMENTS = os.path.join(REPO, "tests", "functional", "image_elements")


def dib():
    try:
        import diskimage_builder
    except ImportError:
        require(False, "needs diskimage-builder (pip install '.[image]')")
    return diskimage_builder


@pytest.mark.parametrize("folder", [ELEMENTS, TEST_ELEMENTS])
def test_image_elements_are_dib_lint_clean(folder):
    dib()
    require_tools("dib-lint")
    with tempfile.TemporaryDirectory() as no_lib:  # lint our elements only, not DIB's library
        result = subprocess.run(["dib-lint"], cwd=REPO, capture_output=True, text=True,
                                env={**os.environ, "ELEMENTS_DIR": os.path.relpath(folder, REPO),
                                     "LIB_DIR": no_lib})
    errors = [line for line in result.stdout.splitlines() if line.startswith("ERROR")]
    assert result.returncode == 0 and errors == [], result.stdout[-3000:]


def test_image_element_dependencies_resolve_with_dibs_own_tool():
    elements_dir = os.path.join(os.path.dirname(dib().__file__), "elements")
    result = subprocess.run(
        [sys.executable, "-m", "diskimage_builder.element_dependencies", "debian-minimal", "vm",
         "block-device-mbr", "mesos"],
        capture_output=True, text=True, env={**os.environ, "ELEMENTS_PATH": f"{ELEMENTS}:{elements_dir}"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert {"mesos", "bayctl-node", "package-installs", "install-static", "dib-init-system"} <= set(
        result.stdout.split())


@pytest.fixture
def element_copy(tmp_path):
    """bayctl's elements and a small extra element in a folder of their own (edited by tests)."""
    dib()
    extra = tmp_path / "extra"
    shutil.copytree(os.path.join(TEST_ELEMENTS, "bayctl-test-fail"), extra / "bayctl-test-fail")
    return extra


def plan(extra_dir, env=None, **request):
    from bayctl.image.builder import ImageRequest, _plan

    request.setdefault("elements", ("bayctl-test-fail",))
    req = ImageRequest(output="/nonexistent/x.qcow2", elements_dirs=(str(extra_dir),), **request)
    return _plan(req, {"PATH": os.environ["PATH"], **(env or {})})


def test_image_digest_changes_with_element_files_settings_and_release(element_copy):
    first = plan(element_copy).digest
    assert plan(element_copy).digest == first
    script = element_copy / "bayctl-test-fail" / "root.d" / "05-bayctl-test-fail"
    script.write_text(script.read_text() + "# changed\n")
    edited = plan(element_copy).digest
    assert edited != first
    assert plan(element_copy, env={"DIB_MESOS_APT_REPO": "http://other"}).digest != edited
    assert plan(element_copy, release="trixie").digest != edited
    assert plan(element_copy, image_format="raw").digest != edited


def test_image_digest_ignores_where_and_how_the_build_runs(element_copy):
    base = plan(element_copy).digest
    assert plan(element_copy, env={"DIB_IMAGE_CACHE": "/elsewhere", "DIB_DEBUG_TRACE": "1"}).digest == base
    assert plan(element_copy, cache_dir="/var/tmp/other-cache").digest == base


def test_image_plan_settles_mirrors_layout_and_elements_path(element_copy):
    from bayctl.image import blockdev

    p = plan(element_copy)
    assert p.env["DIB_RELEASE"] == "bookworm"
    assert p.env["ELEMENTS_PATH"].split(":")[0] == str(element_copy)
    if not blockdev.has_device_mapper():
        assert p.env["DIB_BLOCK_DEVICE_CONFIG"] == blockdev.FLAT_EXT4_LAYOUT
    assert p.owners["root.d/05-bayctl-test-fail"] == "bayctl-test-fail"
    assert not p.needs_bayctl


def test_image_plan_refuses_bad_requests_before_anything_runs(element_copy):
    from bayctl.image.builder import ImageRequest, _plan

    with pytest.raises(ImageError, match="Element 'no-such-element' not found"):
        plan(element_copy, elements=("no-such-element",))
    with pytest.raises(ImageError, match="image format 'vhdx': expected one of qcow2, raw"):
        plan(element_copy, image_format="vhdx")
    with pytest.raises(ImageError, match="setting PATH: only DIB_"):
        _plan(ImageRequest(output="/x", env={"PATH": "/bin"}), {})
    with pytest.raises(ImageError, match="elements folder /no/such/folder does not exist"):
        _plan(ImageRequest(output="/x", elements_dirs=("/no/such/folder",)), {})


def test_image_plan_without_a_mesos_source_fails_at_once_naming_the_settings(element_copy):
    """The mesos element can only fail late (after debootstrap): the plan says it first."""
    from bayctl.image.builder import ImageRequest, _plan

    request = ImageRequest(output="/x.qcow2", elements=("mesos",), bayctl_source=str(element_copy))
    with pytest.raises(ImageError) as failed:
        _plan(request, {"PATH": os.environ["PATH"]})
    message = str(failed.value)
    assert "\n" not in message
    assert "DIB_MESOS_APT_REPO" in message and "DIB_MESOS_DEB_DIR" in message
    assert "--mesos-apt-repo" in message and "BAYCTL_MESOS_APT_REPO" in message
    # Either source (from the request or the environment) is enough.
    assert _plan(ImageRequest(output="/x.qcow2", elements=("mesos",), bayctl_source=str(element_copy),
                              env={"DIB_MESOS_DEB_DIR": str(element_copy)}), {"PATH": os.environ["PATH"]})
    assert _plan(request, {"PATH": os.environ["PATH"], "DIB_MESOS_APT_REPO": "http://repo/"})

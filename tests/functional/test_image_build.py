"""Real diskimage-builder builds of the node image (debian-minimal bookworm, no partitions).

One cold build per session (fixtures_image.node_image): the default elements + a test
element that asserts inside the image; then the image file itself is read with debugfs.
Mesos/Marathon are STAND-IN packages built by the fixtures (see fixtures_image.py): nothing
real is packaged for Mesos anywhere we can reach; ZooKeeper is Debian's.
"""

import os
import subprocess

import pytest
from harness.fixtures_image import TEST_ELEMENTS_DIR, image_cache_dir, image_prerequisites
from harness.prereq import require_tools

from bayctl.errors import ImageError
from bayctl.image import ImageRequest, build
from bayctl.image import builder as build_module
from bayctl.image import source as source_module
from bayctl.image.record import read_record

pytestmark = [pytest.mark.dib, pytest.mark.root]


def debugfs(raw, command):
    result = subprocess.run(["debugfs", "-R", command, raw], capture_output=True, text=True, check=True)
    return result.stdout


def read_file(raw, path):
    return debugfs(raw, f"cat {path}")


def link_names(raw, folder):
    """Names in a folder of the image (e.g. a systemd .wants folder)."""
    listing = debugfs(raw, f"ls -l {folder}")
    return {line.split()[-1] for line in listing.splitlines() if line.strip()}


def test_image_build_passes_the_in_image_checks(node_image, node_image_raw):
    # The test element wrote, from inside the image, the checks it passed.
    passed = read_file(node_image_raw, "/etc/bayctl/image-test.passed").splitlines()
    assert passed == ["commands", "entry points run", "datapath object", "node units enabled",
                      "mesos units wait for a role", "mesos agent configured", "node described once",
                      "role switch"]


def test_image_build_enables_the_node_units_fail_closed(node_image_raw):
    wants = link_names(node_image_raw, "/etc/systemd/system/multi-user.target.wants")
    assert {"bayctl-agent.service", "bayctl-docker-plugin.service", "docker.service",
            "bayctl-mesos-role.path"} <= wants
    assert not {"mesos-slave.service", "mesos-master.service", "marathon.service"} & wants

    agent = read_file(node_image_raw, "/etc/systemd/system/bayctl-agent.service")
    before = next(line for line in agent.splitlines() if line.startswith("Before=")).split("=", 1)[1]
    assert {"docker.service", "mesos-slave.service", "bayctl-docker-plugin.service"} <= set(before.split())
    assert "mount -t bpf" in agent  # bpffs for the pins, where systemd did not mount it
    # docker and the Mesos agent do not start at all without the agent.
    for dropin in ("docker.service.d", "mesos-slave.service.d"):
        text = read_file(node_image_raw, f"/etc/systemd/system/{dropin}/10-bayctl.conf")
        assert "Requires=bayctl-agent.service" in text and "After=bayctl-agent.service" in text


def test_image_build_installs_stand_in_mesos_from_both_sources(node_image_raw):
    status = read_file(node_image_raw, "/var/lib/dpkg/status")
    for package in ("mesos", "marathon"):
        stanza = status.split(f"Package: {package}\n", 1)[1].split("\n\n", 1)[0]
        assert "Status: install ok installed" in stanza
        assert "Version: 99:0.0-bayctl.standin" in stanza
    # ZooKeeper is Debian's own (the master runs it; bays distribute policy through it).
    stanza = status.split("Package: zookeeperd\n", 1)[1].split("\n\n", 1)[0]
    assert "Status: install ok installed" in stanza and "bayctl.standin" not in stanza
    assert "dataDir=/var/lib/zookeeper" in read_file(node_image_raw, "/etc/zookeeper/conf_example/zoo.cfg")
    assert read_file(node_image_raw, "/etc/mesos-slave/containerizers").strip() == "docker,mesos"


def test_image_has_curl_for_wait_conditions_and_seeding(node_image_raw):
    # The Heat user data signals its wait condition with curl, and bayctl asks the agent's
    # API with it over SSH (seeding, wait-for-agents): a minimal Debian has no curl.
    status = read_file(node_image_raw, "/var/lib/dpkg/status")
    assert "Package: curl\n" in status
    stanza = status.split("Package: curl\n", 1)[1].split("\n\n", 1)[0]
    assert "Status: install ok installed" in stanza


def test_image_build_shows_progress_and_records_inputs(node_image):
    image = node_image["image"]
    assert not image.reused and os.path.isfile(image.path)
    phases = [step.phase for step in node_image["steps"]]
    # Every phase was shown, first seen in DIB's order, and the build ended shown as done.
    order = ["root.d", "extra-data.d", "pre-install.d", "install.d", "post-install.d", "finalise.d",
             "convert"]
    first_seen = [phases.index(phase) for phase in order]
    assert first_seen == sorted(first_seen) and "block-device" in phases and phases[-1] == "done"
    elements_seen = {step.element for step in node_image["steps"] if step.element}
    assert {"bayctl-node", "mesos", "bayctl-test-assert"} <= elements_seen
    record = read_record(image.path)
    assert record["inputs_digest"] == image.inputs_digest and record["sha256"] == image.sha256
    # Setting values may hold credentials: the record keeps names only.
    assert "DIB_MESOS_APT_REPO" in record["setting_names"]
    assert node_image["request"].env["DIB_MESOS_APT_REPO"] not in open(image.path + ".inputs.json").read()
    assert "Build completed successfully" in open(image.log_path).read()


def test_image_build_reuses_an_unchanged_image_without_running_dib(node_image, monkeypatch):
    image = node_image["image"]
    log_mtime = os.stat(image.log_path).st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("DIB (or the wheelhouse build) ran for an unchanged request")

    monkeypatch.setattr(build_module, "_run_dib", must_not_run)
    monkeypatch.setattr(source_module, "wheelhouse", must_not_run)
    again = build(node_image["request"])
    assert again.reused
    assert (again.path, again.inputs_digest, again.sha256) == (image.path, image.inputs_digest, image.sha256)
    assert os.stat(image.log_path).st_mtime_ns == log_mtime


def test_image_build_failing_element_names_it_and_leaves_no_image(tmp_path):
    image_prerequisites()
    request = ImageRequest(output=str(tmp_path / "broken.qcow2"), elements=("bayctl-test-fail",),
                           compress=False, cache_dir=image_cache_dir(), elements_dirs=(TEST_ELEMENTS_DIR,))
    with pytest.raises(ImageError) as failed:
        build(request)
    message = str(failed.value)
    assert "in element bayctl-test-fail (root.d/05-bayctl-test-fail)" in message
    assert "the widget this element needs is missing" in message
    assert str(tmp_path / "broken.qcow2.log") in message
    left = sorted(os.listdir(tmp_path))
    assert [name for name in left if "qcow2" in name and not name.endswith((".log", ".lock"))] == []
    assert not any(".building-" in name for name in left)


@pytest.mark.qemu
def test_image_boots_under_qemu_and_the_agent_starts_fail_closed(node_image, tmp_path):
    """Boot the built image once (software emulation, GRUB from the unpartitioned disk).

    The node must come up fail-closed: the agent running with no policy (it says it denies
    everything), its API socket and pins present, the Docker driver serving.
    The test element's bayctl-test-report.service prints "BAYCTL-TEST ..." lines on the
    serial console once the node is up, then powers the VM off. Takes minutes under TCG
    (/dev/kvm does not work on these machines).
    """
    require_tools("qemu-system-x86_64")
    serial = tmp_path / "serial.log"
    subprocess.run(
        ["qemu-system-x86_64", "-accel", "tcg", "-m", "1536", "-smp", "2", "-no-reboot",
         "-drive", f"file={node_image['image'].path},if=virtio,format=qcow2,snapshot=on",
         "-nic", "none",  # no network: the test image runs the Docker driver with veth links
         "-display", "none", "-monitor", "none", "-serial", f"file:{serial}"],
        stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=1800)
    lines = [line.strip() for line in serial.read_text(errors="replace").splitlines()]
    report = dict(line.split(" ", 2)[1:] for line in lines
                  if line.startswith("BAYCTL-TEST ") and line.count(" ") >= 2)
    agent_log = "\n".join(line for line in lines if line.startswith("BAYCTL-TEST-LOG"))
    assert "BAYCTL-TEST end" in lines, "the node never reported (see the serial log)"
    assert report["unit:bayctl-agent.service"] == "active", agent_log
    assert report["unit:bayctl-docker-plugin.service"] == "active", agent_log
    assert report["agent-socket"] == "present" and report["plugin-socket"] == "present"
    assert report["bpffs"] == "bpf_fs" and int(report["pins"]) > 0
    assert "no saved policy: denying all traffic" in agent_log

"""The devstack plugin's phases with the REAL bayctl against the cloud tier (keystone, glance, heat).

Only devstack's own helpers are stood in (tests/harness/devstack_harness.py); `sudo` runs what it is
given (this test is root). bayctl reaches the tier the way devstack presents a cloud: a
clouds.yaml with a `devstack-admin` entry and OS_CLOUD. Each phase is sourced as stack.sh
and clean.sh source it, one after the other:

- stack install: asks devstack for the build tools and for bayctl with extras bayctl has;
- stack post-config: bayctl's state directory (0700, the stack user's) and the image folder;
- stack extra: the real `bayctl image build --upload`. The image folder holds the session's
  one DIB build (fixtures_image.node_image) as an earlier stack.sh would have left it, and the
  plugin's settings name the same inputs, so bayctl finds its record and reuses it (no second
  build); the image lands in Glance with os_distro and its inputs digest. Then, with
  BAYCTL_CREATE_BAY=True, a heat bay (1 slave) through the real Heat: BAYCTL_HEAT_ENVIRONMENTS
  layers the test stand-ins over openstack.yaml, BAYCTL_BAY_SPEC gives the SSH user and key,
  and fake servers (fixtures_fakeservers) boot at the addresses the stack reports;
- clean: the stack is gone from Heat and so are bayctl's state and image folders.
"""

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from harness.devstack_harness import ROOT, flag, named, read_calls, write_harness

from bayctl.cloud.images import INPUTS_PROPERTY
from bayctl.create.state import BayState
from bayctl.image import DEFAULT_ELEMENTS
from bayctl.image.record import record_path
from bayctl.node.client import AgentClient
from bayctl.policy import load_policy

pytestmark = [pytest.mark.cloud, pytest.mark.root, pytest.mark.sshd, pytest.mark.dib,
              pytest.mark.timeout(1800)]  # a cold node_image build may happen here first

BAY = "bds-bay"
IMAGE = "bds-node"
KEYPAIR = "bayctl-bds-bay"  # what bayctl names the keypair it makes (devstack's default: none given)
# Records each call as the stood-in helpers do, then runs the REAL bayctl.
BAYCTL_RECORDER = """#!/bin/bash
( IFS=$'\\x1f'; printf '%s\\n' "bayctl$IFS$*" >> "$BSEED_CALLS" )
exec {bayctl} "$@"
"""


@pytest.fixture
def glance_without_quota(cloud_tier, tmp_path):
    """The tier's Glance (same database, same store) through a second glance-api with no quota.

    The tier gives every project a 4 MB storage quota (keystone unified limits), so that a test
    can meet it with a small image; the node image is over 1 GB. A second API server of the
    same Glance, as a deployment runs several behind one endpoint, differs only in that setting:
    it does not enforce keystone's limits."""
    from harness.cloudtier import tier as tier_module
    from harness.cloudtier import venv

    workdir = getattr(cloud_tier, "workdir", None) or os.path.dirname(os.environ["BAYCTL_CLOUD_TIER_REUSE"])
    config = tmp_path / "glance-unlimited"
    config.mkdir()
    for name in ("glance-api.conf", "glance-api-paste.ini"):
        shutil.copy(os.path.join(workdir, "glance", name), config)
    conf = (config / "glance-api.conf").read_text()
    quota = r"^ *use_keystone_limits = true$"
    if not re.search(quota, conf, re.M):  # pytest.fail: an assert would print the file, passwords and all
        pytest.fail("the tier's glance-api.conf no longer enforces keystone limits", pytrace=False)
    (config / "glance-api.conf").write_text(re.sub(quota, "use_keystone_limits = false", conf, flags=re.M))
    port = tier_module.PORTS["glance"] + 1
    with open(tmp_path / "glance-unlimited.log", "wb") as log:
        proc = subprocess.Popen([venv.python(), tier_module.SERVE, "glance", str(port), str(config)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        tier_module.wait_http(port, "/versions", proc=proc, what="glance (no quota)")
        yield f"http://{tier_module.HOST}:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


class DevstackHost:
    """What a devstack controller gives the plugin: its folders, clouds.yaml, local.conf."""

    def __init__(self, tmp_path, cloud_tier, image_endpoint, local_conf):
        self.dir = tmp_path
        self.data = tmp_path / "data"
        self.state_dir = self.data / "bayctl"
        self.image_dir = self.data / "bayctl-images"
        self.calls = tmp_path / "calls"
        bindir = tmp_path / "bin"
        bindir.mkdir()
        real = os.path.join(os.path.dirname(sys.executable), "bayctl")
        (bindir / "bayctl").write_text(BAYCTL_RECORDER.format(bayctl=real))
        (bindir / "bayctl").chmod(0o755)
        # devstack writes /etc/openstack/clouds.yaml with its admin as `devstack-admin`.
        auth = dict(cloud_tier.auth)
        region = auth.pop("region_name")
        auth.pop("identity_api_version")
        clouds = tmp_path / "clouds.yaml"
        clouds.write_text(yaml.safe_dump({"clouds": {"devstack-admin": {
            "auth": auth, "region_name": region, "identity_api_version": 3,
            "image_endpoint_override": image_endpoint}}}))
        clouds.chmod(0o600)
        self.environ = {
            "PATH": f"{bindir}:{os.path.dirname(sys.executable)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                    "/usr/bin:/sbin:/bin",
            "HOME": str(tmp_path), "BSEED_CALLS": str(self.calls), "OS_CLIENT_CONFIG_FILE": str(clouds),
            # DIB_* of this process count in an image's inputs (as they did for node_image).
            **{k: v for k, v in os.environ.items() if k.startswith("DIB_")},
            **local_conf,
        }

    def run(self, *mode, background=False):
        """Source the plugin for `mode`; -> the process if `background`, else (exit code, calls)."""
        self.calls.write_text("")
        harness = write_harness(str(self.dir), mode, dest=str(self.dir / "opt"), data_dir=str(self.data),
                                stack_user=_user(), sudo_runs=True)
        with open(self._log(mode), "w") as log:
            proc = subprocess.Popen(["bash", harness], env=self.environ, stdout=log, stderr=subprocess.STDOUT)
        return proc if background else self.finish(proc)

    def finish(self, proc, timeout=600):
        return proc.wait(timeout), read_calls(self.calls)

    def _log(self, mode):
        return self.dir / ("-".join(mode) + ".log")

    def output(self, *mode):
        return self._log(mode).read_text()

    def login_shell(self, command):
        """`command` as the stack user's login shell runs it: the profile post-config wrote sourced."""
        environ = dict(self.environ, OS_CLOUD="devstack-admin")
        environ.pop("BAYCTL_STATE_DIR", None)
        return subprocess.run(["bash", "-c", f". {self.environ['BAYCTL_PROFILE']} && {command}"], env=environ,
                              capture_output=True, text=True, timeout=300)



def _user():
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _bayctl_calls(calls):
    return [call[1:] for call in calls if call[0] == "bayctl"]


class _Running:
    """The `extra` phase as the worker boot_reported watches."""

    def __init__(self, proc):
        self.proc = proc

    def is_alive(self):
        return self.proc.poll() is None


def test_devstack_phases_with_the_real_bayctl_on_the_cloud_tier(cloud_tier, cloud_conn, glance_without_quota,
                                                                node_image, fake_servers, tmp_path,
                                                                monkeypatch):
    from bayctl.providers import get_provider
    from bayctl.providers.heat import templates_dir

    built = node_image["image"]
    request = node_image["request"]
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    spec = tmp_path / "bay.yaml"
    spec.write_text(f"ssh_user: root\nssh_key: {key}\ntimeout: 480\n")
    local_conf = {
        "BAYCTL_DIR": ROOT,
        "BAYCTL_IMAGE_NAME": IMAGE,
        # The inputs node_image was built from, as local.conf settings.
        "BAYCTL_MESOS_APT_REPO": request.env["DIB_MESOS_APT_REPO"],
        "BAYCTL_MESOS_DEB_DIR": request.env["DIB_MESOS_DEB_DIR"],
        "BAYCTL_IMAGE_EXTRA_ELEMENTS": " ".join(e for e in request.elements if e not in DEFAULT_ELEMENTS),
        "BAYCTL_IMAGE_ELEMENTS_PATH": " ".join(request.elements_dirs),
        "BAYCTL_IMAGE_COMPRESS": str(request.compress),
        "BAYCTL_IMAGE_BAYCTL_SOURCE": request.bayctl_source,
        "BAYCTL_IMAGE_CACHE_DIR": request.cache_dir,  # outside the image folder: survives clean
        "BAYCTL_CREATE_BAY": "True",
        "BAYCTL_BAY_NAME": BAY,
        "BAYCTL_SLAVES": "1",
        # BAYCTL_KEYPAIR left at its default (empty): bayctl uploads the bay's key as KEYPAIR.
        "BAYCTL_PROFILE": str(tmp_path / "profile.d-bayctl-devstack.sh"),  # not the host's /etc
        "PUBLIC_NETWORK_NAME": "public",
        "BAYCTL_BAY_SPEC": str(spec),
        "BAYCTL_HEAT_ENVIRONMENTS": os.path.join(templates_dir(), "environments", "standins.yaml"),
    }
    if "DIB_BLOCK_DEVICE_CONFIG" in request.env:  # node_image chose it itself on this machine
        local_conf["DIB_BLOCK_DEVICE_CONFIG"] = request.env["DIB_BLOCK_DEVICE_CONFIG"]
    host = DevstackHost(tmp_path, cloud_tier, glance_without_quota, local_conf)
    heat = get_provider("heat", cloud_conn)
    try:
        _phases(host, built, heat, cloud_conn, fake_servers, key, monkeypatch)
    finally:
        # Whatever a failed phase left in the tier (a passing run leaves nothing but the image).
        if heat.find(BAY) is not None:
            heat.delete(BAY, wait=True)
        for image in list(cloud_conn.image.images(name=IMAGE)):
            cloud_conn.image.delete_image(image, ignore_missing=True)


def _phases(host, built, heat, conn, fake_servers, key, monkeypatch):
    # stack install: packages and bayctl itself (setup_develop stood in: bayctl is installed here).
    code, calls = host.run("stack", "install")
    assert code == 0, host.output("stack", "install")
    assert {"clang", "libbpf-dev", "debootstrap", "qemu-utils"} <= set(named(calls, "install_package")[0])
    (checkout, extras), = named(calls, "setup_develop")
    assert checkout == ROOT
    assert set(extras.split(",")) <= set(importlib.metadata.metadata("bayctl").get_all("Provides-Extra"))
    # The DIB build is the one extra; the OpenStack clients and SSH seeding are base dependencies.
    assert "image" in extras.split(",")
    assert _bayctl_calls(calls) == [] and not host.data.exists()

    # stack post-config: the state folder, for the stack user only.
    code, calls = host.run("stack", "post-config")
    assert code == 0, host.output("stack", "post-config")
    assert host.state_dir.is_dir() and (host.state_dir.stat().st_mode & 0o777) == 0o700
    assert host.state_dir.stat().st_uid == os.getuid() and host.image_dir.is_dir()

    # The session's build, where an earlier stack.sh would have left it: a hard link keeps
    # the file's size and mtime, which bayctl's record beside it names.
    target = host.image_dir / f"{IMAGE}.qcow2"
    os.link(built.path, target)
    shutil.copy2(record_path(built.path), record_path(str(target)))

    # stack extra: build (reused) + upload, then the bay, while the fake servers boot.
    monkeypatch.setenv("BAYCTL_STATE_DIR", str(host.state_dir))
    proc = host.run("stack", "extra", background=True)
    try:
        booted = fake_servers.boot_reported(BAY, (key.parent / "id_ed25519.pub").read_text(), _Running(proc))
    finally:
        code, calls = host.finish(proc)
    output = host.output("stack", "extra")
    assert code == 0, output
    argvs = _bayctl_calls(calls)
    assert [argv[:2] for argv in argvs] == [["image", "build"], ["create", "mesosbay"], ["show", BAY]]
    assert "--upload" in argvs[0] and flag(argvs[0], "--image-name") == IMAGE
    assert flag(argvs[1], "--spec") == str(key.parent / "bay.yaml") and flag(argvs[1], "--slaves") == "1"
    # Reused, not rebuilt: the same file (DIB would have renamed a new one into place).
    assert re.search(r"\|\s*reused\s*\|\s*True\s*\|", output), output
    assert os.stat(target).st_ino == os.stat(built.path).st_ino
    assert not list(host.image_dir.glob(".*building*"))
    glance = conn.image.find_image(IMAGE, ignore_missing=False)
    assert (glance.status, glance.os_distro, glance.disk_format) == ("active", "debian", "qcow2")
    assert glance.properties[INPUTS_PROPERTY] == f"bayctl-image:{built.inputs_digest}"

    stack = heat.find(BAY)
    assert stack is not None and stack.status == "CREATE_COMPLETE"
    state = BayState.load(BAY)
    assert state.status == "READY" and state.provider == "heat"
    assert state.image_id == glance.id  # the bay's nodes boot the image just uploaded
    assert state.steps["seed-policy"] == "done"
    digest = load_policy(os.path.join(ROOT, "bayctl", "share", "policies", "web-db.yaml")).digest
    slaves = [node for node in state.nodes if node.role == "slave"]
    assert len(slaves) == 1
    assert AgentClient(booted[slaves[0].name].agent_socket).show_policy()["digest"] == digest
    assert re.search(r"\|\s*status\s*\|\s*READY\s*\|", output)  # `bayctl show` at the end of extra

    # The bay's key (the spec's ssh_key) went to Nova as a keypair bayctl made and recorded.
    keypair = conn.compute.find_keypair(KEYPAIR)
    assert keypair is not None
    assert keypair.public_key.split()[:2] == (key.parent / "id_ed25519.pub").read_text().split()[:2]
    assert state.extra["created_keypair"] == KEYPAIR

    # `bayctl list` as the stack user, in a login shell: the state dir comes from the profile.
    listed = host.login_shell("bayctl list -f json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [row for row in json.loads(listed.stdout) if row["name"] == BAY]
    assert (row["provider"], row["status"], row["slaves"]) == ("heat", "READY", 1)
    assert row["policy_digest"] == digest[:12]

    # clean: the bay leaves Heat; bayctl's state and image folders go; DIB's cache stays.
    code, calls = host.run("clean")
    assert code == 0, host.output("clean")
    assert _bayctl_calls(calls) == [["delete", "bay", BAY]]
    assert heat.find(BAY) is None
    assert conn.compute.find_keypair(KEYPAIR) is None  # deleted with the bay that made it
    assert not host.state_dir.exists() and not host.image_dir.exists()
    assert os.path.isdir(host.environ["BAYCTL_IMAGE_CACHE_DIR"]) and os.path.exists(built.path)

"""Fixtures of the image tests: stand-in Mesos packages, a local apt repository, one real build.

Mesos and Marathon are packaged in no repository this machine (or CI) can reach, so the
tests build STAND-IN packages named `mesos` and `marathon` with dpkg-deb: shell scripts and
systemd units laid out like Mesosphere's packages (units mesos-master, mesos-slave,
marathon), whose postinst enables their services the way those packages did. `mesos` is
served from a flat apt repository on 127.0.0.1 (DIB_MESOS_APT_REPO); `marathon` comes from a
folder of .deb files (DIB_MESOS_DEB_DIR): one build exercises both sources. ZooKeeper is
Debian's real `zookeeperd` (a stand-in `zookeeperd`, epoch 99, can still be built for
benchmarks that want no Java in the image: its master then states no ZooKeeper).

The session builds ONE image (cold, ~3-5 min) that every dib test inspects.
"""

import functools
import http.server
import os
import shutil
import subprocess
import threading

import pytest

from harness.paths import TESTS
from harness.prereq import require, require_root, require_tools

TEST_ELEMENTS_DIR = os.path.join(TESTS, "functional", "image_elements")
STANDIN_VERSION = "99:0.0-bayctl.standin"
IMAGE_TOOLS = ("debootstrap", "qemu-img", "debugfs", "dpkg-deb", "apt-ftparchive", "losetup", "sudo",
               "make", "clang")

_DAEMON = """#!/bin/sh
# Stand-in for {name} (bayctl tests): Mesos is packaged nowhere reachable.
echo "stand-in {name} $*"
exec sleep infinity
"""

# The stand-ins of the Mesos daemons and Marathon record how they were started -- argv, the
# environment and the flags a real one would read (Mesosphere's mesos-init-wrapper turns
# /etc/mesos/zk and each file of /etc/mesos-{{master,slave}} into a --flag) -- to
# /var/lib/mesos-standin/NAME.json, then answer the health URL the Heat fragments wait for,
# so a test (or a VM) can assert what a real Mesos would have been started with.
_RECORDING_DAEMON = """#!/usr/bin/python3
# Stand-in for {name} (bayctl tests): records its start, then answers {health}.
import http.server, json, os, sys
FLAGS_DIR, PORT, HEALTH = {flags_dir!r}, {port}, {health!r}
def read(path):
    with open(path) as f:
        return f.read().strip()
flags = {{}}
if os.path.isfile("/etc/mesos/zk"):
    flags["master" if FLAGS_DIR == "/etc/mesos-slave" else "zk"] = read("/etc/mesos/zk")
if os.path.isdir(FLAGS_DIR):
    for flag in sorted(os.listdir(FLAGS_DIR)):
        if os.path.isfile(os.path.join(FLAGS_DIR, flag)):
            flags[flag] = read(os.path.join(FLAGS_DIR, flag))
cni = {{}}
cni_dir = flags.get("network_cni_config_dir")
if cni_dir and os.path.isdir(cni_dir):
    cni = {{n: read(os.path.join(cni_dir, n)) for n in sorted(os.listdir(cni_dir))}}
os.makedirs("/var/lib/mesos-standin", exist_ok=True)
record = {{"name": {name!r}, "argv": sys.argv, "env": dict(os.environ), "flags": flags,
          "cni_configs": cni}}
with open("/var/lib/mesos-standin/{name}.json.tmp", "w") as f:
    json.dump(record, f, indent=1, sort_keys=True)
os.replace("/var/lib/mesos-standin/{name}.json.tmp", "/var/lib/mesos-standin/{name}.json")
print("stand-in {name}: recorded /var/lib/mesos-standin/{name}.json", flush=True)

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == HEALTH else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((flags.get("ip", "0.0.0.0"), PORT), Health).serve_forever()
"""

# daemon -> (the flags folder it reads, its port, the URL the fragments wait for)
RECORDING = {
    "mesos-master": ("/etc/mesos-master", 5050, "/master/health"),
    "mesos-slave": ("/etc/mesos-slave", 5051, "/health"),
    "marathon": ("/etc/marathon/conf", 8080, "/ping"),
}

_UNIT = """[Unit]
Description=stand-in {name} (bayctl image tests)

[Service]
ExecStart=/usr/sbin/{name}

[Install]
WantedBy=multi-user.target
"""

_POSTINST = """#!/bin/sh
set -e
# Like the packages it stands in for: enable its services on install.
if [ "$1" = configure ]; then
    for unit in {units}; do systemctl enable "$unit" || true; done
fi
"""

# package -> {daemon executable: unit name}
STANDINS = {
    "mesos": {"mesos-master": "mesos-master.service", "mesos-slave": "mesos-slave.service"},
    "marathon": {"marathon": "marathon.service"},
    "zookeeperd": {"zookeeper": "zookeeper.service"},
}


def build_standin_deb(package, daemons, out_dir, work_dir):
    """A stand-in .deb for `package` built with dpkg-deb; returns its path."""
    root = os.path.join(work_dir, package)
    os.makedirs(os.path.join(root, "DEBIAN"))
    os.makedirs(os.path.join(root, "usr", "sbin"))
    os.makedirs(os.path.join(root, "lib", "systemd", "system"))
    for daemon, unit in daemons.items():
        if daemon in RECORDING:
            flags_dir, port, health = RECORDING[daemon]
            text = _RECORDING_DAEMON.format(name=daemon, flags_dir=flags_dir, port=port, health=health)
        else:
            text = _DAEMON.format(name=daemon)
        _write(os.path.join(root, "usr", "sbin", daemon), text, 0o755)
        _write(os.path.join(root, "lib", "systemd", "system", unit), _UNIT.format(name=daemon), 0o644)
    if package == "zookeeperd":  # Debian's layout: the master's user data writes conf/myid
        os.makedirs(os.path.join(root, "etc", "zookeeper", "conf"))
    if package == "mesos":  # Mesosphere's layout: flags as files
        for folder in ("etc/mesos", "etc/mesos-master", "etc/mesos-slave"):
            os.makedirs(os.path.join(root, folder), exist_ok=True)
        _write(os.path.join(root, "etc", "mesos", "zk"), "zk://localhost:2181/mesos\n", 0o644)
    _write(os.path.join(root, "DEBIAN", "control"),
           f"Package: {package}\nVersion: {STANDIN_VERSION}\nArchitecture: all\n"
           + ("Depends: python3\n" if set(daemons) & set(RECORDING) else "") +
           f"Maintainer: bayctl tests <tests@bayctl.invalid>\n"
           f"Description: stand-in {package} for bayctl's image tests (not the real thing)\n", 0o644)
    _write(os.path.join(root, "DEBIAN", "postinst"),
           _POSTINST.format(units=" ".join(daemons.values())), 0o755)
    deb = os.path.join(out_dir, f"{package}_0.0-bayctl.standin_all.deb")
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", root, deb], check=True,
                   stdout=subprocess.DEVNULL)
    return deb


def _write(path, text, mode):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class AptRepoServer:
    """A flat apt repository (one folder + Packages index) served over HTTP on 127.0.0.1."""

    def __init__(self, folder):
        with open(os.path.join(folder, "Packages"), "w") as index:
            subprocess.run(["apt-ftparchive", "packages", "."], cwd=folder, stdout=index, check=True)
        with open(os.path.join(folder, "Release"), "w") as release:  # unsigned: trusted=yes
            subprocess.run(["apt-ftparchive", "release", "."], cwd=folder, stdout=release, check=True)
        handler = functools.partial(_QuietHandler, directory=folder)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def image_prerequisites():
    require_root()
    require_tools(*IMAGE_TOOLS)
    try:
        import diskimage_builder  # noqa: F401
    except ImportError:
        require(False, "needs diskimage-builder (pip install '.[image]')")


@pytest.fixture(scope="session")
def image_mesos_sources(tmp_path_factory):
    """{"DIB_MESOS_APT_REPO": url, "DIB_MESOS_DEB_DIR": folder} with the stand-in packages."""
    image_prerequisites()
    base = tmp_path_factory.mktemp("image-mesos")
    repo, debs, work = (str(base / d) for d in ("repo", "debs", "work"))
    for d in (repo, debs, work):
        os.makedirs(d)
    build_standin_deb("mesos", STANDINS["mesos"], repo, work)
    # ZooKeeper is Debian's real zookeeperd (no stand-in: the element installs it from the
    # distribution), so the VM tier's masters run one and bays distribute policy through it;
    # marathon comes from the folder instead, so one build still takes both sources.
    build_standin_deb("marathon", STANDINS["marathon"], debs, work)
    server = AptRepoServer(repo)
    try:
        yield {"DIB_MESOS_APT_REPO": server.url, "DIB_MESOS_DEB_DIR": debs}
    finally:
        server.close()


def image_cache_dir():
    """DIB's cache (debootstrap tarball) kept across sessions on a developer machine."""
    return os.environ.get("BAYCTL_IMAGE_TEST_CACHE", "/var/tmp/bayctl-image-test-cache")


@pytest.fixture(scope="session")
def node_image(tmp_path_factory, image_mesos_sources):
    """The session's one real build: the default node image + the in-image assertions."""
    from bayctl.image import DEFAULT_ELEMENTS, ImageRequest, blockdev, build, source

    env = dict(image_mesos_sources)
    if blockdev.has_device_mapper():
        # The tests read the image's filesystem directly: keep it unpartitioned everywhere.
        env["DIB_BLOCK_DEVICE_CONFIG"] = blockdev.FLAT_EXT4_LAYOUT
    out = tmp_path_factory.mktemp("image-out")
    # bayctl's wheels are built here once (the very code `build` runs for a checkout) and
    # passed as the source: the inputs digest then names these wheels, not the working tree,
    # which other work may change while the session runs.
    with open(out / "wheelhouse.log", "w") as log:
        wheelhouse = source.wheelhouse(image_cache_dir(), log)
    request = ImageRequest(
        output=str(out / "bayctl-node-test.qcow2"),
        elements=(*DEFAULT_ELEMENTS, "bayctl-test-assert"),
        compress=False,  # the tests convert it to raw anyway
        cache_dir=image_cache_dir(),
        env=env,
        elements_dirs=(TEST_ELEMENTS_DIR,),
        bayctl_source=wheelhouse,
    )
    steps = []
    image = build(request, on_step=steps.append)
    return {"request": request, "image": image, "steps": steps}


@pytest.fixture(scope="session")
def node_image_raw(node_image, tmp_path_factory):
    """The image converted to raw: one ext4 filesystem debugfs reads (no mount, no root tricks)."""
    raw = str(tmp_path_factory.mktemp("image-raw") / "node.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", node_image["image"].path, raw], check=True)
    yield raw
    shutil.rmtree(os.path.dirname(raw), ignore_errors=True)

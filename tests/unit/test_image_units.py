"""The image wrapper's parts that need no build: mirrors, layout, progress, digest, CLI settings."""

import argparse
import http.server
import os
import socket
import threading
import zipfile

import pytest

from bayctl.errors import ImageError
from bayctl.image import blockdev, mirrors, record, source
from bayctl.image.elements import tree_digest
from bayctl.image.progress import BuildProgress, Step, describe

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def apt_dir(tmp_path, files):
    os.makedirs(tmp_path / "sources.list.d")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return str(tmp_path)


def test_image_mirrors_come_from_the_machines_deb822_sources(tmp_path):
    folder = apt_dir(tmp_path, {"sources.list.d/debian.sources": DEB822,
                                "sources.list.d/other.sources.disabled": "Types: deb\nURIs: http://x/debian\n"})
    assert mirrors.mirror_env("bookworm", {}, folder) == {
        "DIB_DISTRIBUTION_MIRROR": "http://mirror.example/debian",
        "DIB_DEBIAN_SECURITY_MIRROR": "http://mirror.example/debian-security",
    }


def test_image_mirrors_one_line_sources_and_security_beside_the_mirror(tmp_path):
    folder = apt_dir(tmp_path, {"sources.list": "# comment\ndeb [arch=amd64 signed-by=/k.gpg] "
                                                "http://m.example/pub/debian/ bookworm main\n"
                                                "deb-src http://m.example/pub/debian bookworm main\n"})
    found = mirrors.debian_mirrors("bookworm", mirrors.read_apt_sources(folder))
    assert found == ("http://m.example/pub/debian", "http://m.example/pub/debian-security")


def test_image_mirrors_settings_given_by_the_caller_win(tmp_path):
    folder = apt_dir(tmp_path, {"sources.list.d/debian.sources": DEB822})
    env = mirrors.mirror_env("bookworm", {"DIB_DISTRIBUTION_MIRROR": "http://mine/debian"}, folder)
    assert env == {"DIB_DEBIAN_SECURITY_MIRROR": "http://mirror.example/debian-security"}


def test_image_mirrors_none_when_the_machine_uses_no_debian_archive(tmp_path):
    folder = apt_dir(tmp_path, {"sources.list": "deb http://archive.example/ubuntu jammy main\n"})
    assert mirrors.mirror_env("bookworm", {}, folder) == {}


def test_image_blockdev_flat_layout_only_without_device_mapper(tmp_path, monkeypatch):
    # /proc/misc of a kernel without device-mapper (even if /dev/mapper/control exists).
    misc = tmp_path / "misc"
    misc.write_text("237 loop-control\n 58 fuse\n")
    assert blockdev.block_device_env({}, str(misc)) == {"DIB_BLOCK_DEVICE_CONFIG": blockdev.FLAT_EXT4_LAYOUT}
    assert blockdev.block_device_env({"DIB_BLOCK_DEVICE_CONFIG": "file:///x.yaml"}, str(misc)) == {}
    misc.write_text("236 device-mapper\n237 loop-control\n")
    monkeypatch.setattr(blockdev.shutil, "which", lambda name: f"/usr/sbin/{name}")
    assert blockdev.block_device_env({}, str(misc)) == {}  # DIB's own partitioned layout
    import yaml

    layout = yaml.safe_load(blockdev.FLAT_EXT4_LAYOUT)
    assert [next(iter(node)) for node in layout] == ["local_loop", "mkfs", "mount", "fstab"]
    assert layout[1]["mkfs"]["type"] == "ext4" and layout[2]["mount"]["mount_point"] == "/"


DIB_OUTPUT = """\
2026-11-23 18:28:34.996 | Running hooks from /tmp/dib_build.X/hooks/root.d
2026-11-23 18:28:35.000 | dib-run-parts Running /tmp/dib_build.X/hooks/root.d/08-debootstrap
2026-11-23 18:28:35.100 | I: Retrieving InRelease
2026-11-23 18:28:36.000 | dib-run-parts 08-debootstrap completed
2026-11-23 18:28:37.000 | dib-run-parts Running /tmp/in_target.d/install.d/60-bayctl-node-install
2026-11-23 18:28:37.500 | Processing ./bayctl-0.1.0-py3-none-any.whl
2026-11-23 18:28:38.000 | bayctl-node: the installed bayctl has no datapath object
2026-11-23 18:28:38.100 | INFO diskimage_builder.block_device.blockdevice [-] State already cleaned
2026-11-23 18:28:38.200 | Unmount /tmp/dib_build.X/mnt/proc
"""


def feed_all(progress, text):
    return [step for step in map(progress.feed, text.splitlines(keepends=True)) if step is not None]


def test_image_progress_names_the_phase_element_and_script():
    progress = BuildProgress({"root.d/08-debootstrap": "debootstrap",
                              "install.d/60-bayctl-node-install": "bayctl-node"})
    steps = feed_all(progress, DIB_OUTPUT)
    assert steps == [Step("root.d", None, None), Step("root.d", "debootstrap", "08-debootstrap"),
                     Step("install.d", "bayctl-node", "60-bayctl-node-install")]
    assert describe(steps[-1]) == "install.d: bayctl-node (60-bayctl-node-install)"


def test_image_progress_failure_is_the_unfinished_script_with_its_own_lines():
    progress = BuildProgress({"install.d/60-bayctl-node-install": "bayctl-node"})
    feed_all(progress, DIB_OUTPUT)
    step, tail = progress.failure()
    assert step.element == "bayctl-node"
    # DIB's cleanup after the failure is not part of what the user is shown.
    assert tail == ["dib-run-parts Running /tmp/in_target.d/install.d/60-bayctl-node-install",
                    "Processing ./bayctl-0.1.0-py3-none-any.whl",
                    "bayctl-node: the installed bayctl has no datapath object"]


def test_image_progress_completed_build():
    progress = BuildProgress({})
    steps = feed_all(progress, "2026-11-23 18:31:41.727 | Converting image using qemu-img convert\n"
                               "2026-11-23 18:32:54.721 | Build completed successfully\n")
    assert [s.phase for s in steps] == ["convert", "done"] and progress.succeeded


def test_image_record_digest_is_canonical_and_settings_count_by_content(tmp_path):
    assert record.inputs_digest({"a": 1, "b": [1, 2]}) == record.inputs_digest({"b": [1, 2], "a": 1})
    assert record.inputs_digest({"a": 1}) != record.inputs_digest({"a": 2})
    deb_dir = tmp_path / "debs"
    deb_dir.mkdir()
    (deb_dir / "mesos.deb").write_bytes(b"one")
    before = record.setting_value(str(deb_dir), tree_digest)
    (deb_dir / "mesos.deb").write_bytes(b"two")
    after = record.setting_value(str(deb_dir), tree_digest)
    assert before != after and before.startswith("content:")
    assert record.setting_value("http://repo.example/mesos", None) == "http://repo.example/mesos"


def test_image_record_matches_only_the_same_file_and_digest(tmp_path):
    image = tmp_path / "node.qcow2"
    image.write_bytes(b"image")
    rec = record.write_record(str(image), {"inputs_digest": "d1"})
    assert record.read_record(str(image)) == rec
    assert record.image_matches(str(image), rec, "d1")
    assert not record.image_matches(str(image), rec, "d2")
    image.write_bytes(b"another image")
    assert not record.image_matches(str(image), rec, "d1")


def fake_wheel(folder, with_object, scripts=("bayctl-agent", "bayctl-docker-plugin", "bayctl-cni")):
    path = os.path.join(folder, "bayctl-0.1.0-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("bayctl/__init__.py", "")
        if with_object:
            wheel.writestr("bayctl/node/bpf/bayctl_tc.bpf.o", b"\x7fELF")
        wheel.writestr("bayctl-0.1.0.dist-info/entry_points.txt",
                       "[console_scripts]\n" + "".join(f"{s} = bayctl.x:main\n" for s in scripts))
    return path


def test_image_wheelhouse_without_datapath_object_is_refused(tmp_path):
    fake_wheel(str(tmp_path), with_object=False)
    with pytest.raises(ImageError, match=r"no datapath object \(bayctl/node/bpf/\*\.bpf\.o\)"):
        source.check_wheelhouse(str(tmp_path))


def test_image_wheelhouse_needs_the_node_console_scripts(tmp_path):
    fake_wheel(str(tmp_path), with_object=True, scripts=("bayctl-agent",))
    with pytest.raises(ImageError, match="lacks the console scripts bayctl-docker-plugin, bayctl-cni"):
        source.check_wheelhouse(str(tmp_path))
    os.unlink(os.path.join(tmp_path, "bayctl-0.1.0-py3-none-any.whl"))
    fake_wheel(str(tmp_path), with_object=True)
    source.check_wheelhouse(str(tmp_path))


def cli_args(**overrides):
    values = dict(set=[], mirror=None, security_mirror=None, mesos_apt_repo=None, mesos_deb_dir=None,
                  mesos_apt_key=None)
    values.update(overrides)
    return argparse.Namespace(**values)


def test_image_cli_settings(tmp_path):
    from bayctl.cli.image import settings

    env = settings(cli_args(set=["DIB_DEBUG_TRACE=1"], mirror="http://m/debian",
                            mesos_apt_repo="http://127.0.0.1:1/", mesos_deb_dir=str(tmp_path)))
    assert env == {"DIB_DEBUG_TRACE": "1", "DIB_DISTRIBUTION_MIRROR": "http://m/debian",
                   "DIB_MESOS_APT_REPO": "http://127.0.0.1:1/", "DIB_MESOS_DEB_DIR": str(tmp_path)}
    with pytest.raises(ImageError, match=r"--set 'PATH=/x': expected DIB_KEY=VALUE"):
        settings(cli_args(set=["PATH=/x"]))
    with pytest.raises(ImageError, match=r"--mesos-deb-dir /no/such/dir: no such file or folder"):
        settings(cli_args(mesos_deb_dir="/no/such/dir"))


class _MirrorHandler(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200 if self.path == "/debian/dists/bookworm/InRelease" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_mirror():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MirrorHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_image_mirror_check_fails_fast_and_says_which_setting(loopback_mirror):
    mirrors.check_reachable({"DIB_DISTRIBUTION_MIRROR": loopback_mirror + "/debian"}, "bookworm")
    with pytest.raises(ImageError, match=r"DIB_DISTRIBUTION_MIRROR=.*answered HTTP 404; is trixie on this"):
        mirrors.check_reachable({"DIB_DISTRIBUTION_MIRROR": loopback_mirror + "/debian"}, "trixie")
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(ImageError, match=r"DIB_DEBIAN_SECURITY_MIRROR=http://127.0.0.1:\d+/x: unreachable"):
        mirrors.check_reachable({"DIB_DEBIAN_SECURITY_MIRROR": f"http://127.0.0.1:{port}/x"}, "bookworm")

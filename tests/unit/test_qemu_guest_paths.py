"""The qemu guest sees the test tree and the Python wherever they live (tests/harness/plugin_qemu.py).

The guest mounts fresh tmpfs on /tmp, /run and /var/tmp over the host root it sees over 9p,
so a checkout or a virtualenv under those paths would vanish inside it ("can't open file
'/tmp/<dir>/tests/plugin_qemu_guest.py'"): each such directory gets a 9p share of its own.
"""

import os
import sys

from harness.plugin_qemu import GUEST_TMPFS, build_initramfs, guest_needs, hidden_paths


def test_directories_under_the_guests_tmpfs_are_shared_outermost_first():
    assert hidden_paths(["/tmp/clone/tests", "/tmp/clone", "/var/tmp/venv/bin", "/work/main", "/usr"]) == [
        "/tmp/clone", "/var/tmp/venv/bin"]
    assert hidden_paths(["/work/main", "/root/.pyenv/versions/3.11.7"]) == []
    assert set(GUEST_TMPFS) == {"/tmp", "/run", "/var/tmp"}


def test_the_guest_needs_the_script_tree_this_python_and_bayctl():
    import bayctl
    needs = guest_needs("/tmp/clone/tests/harness/plugin_qemu_guest.py")
    assert "/tmp/clone" in needs and sys.prefix in needs
    assert os.path.dirname(os.path.dirname(bayctl.__file__)) in needs


def test_each_share_is_mounted_after_the_tmpfs_at_its_own_path(tmp_path, monkeypatch):
    # Only the /init text is checked here; the qemu tier boots it (test_plugin_ipvlan_qemu.py).
    from harness import plugin_qemu
    monkeypatch.setattr(plugin_qemu, "load_order", lambda tree, wanted: [])
    build_initramfs(str(tmp_path), str(tmp_path), "/tmp/clone/tests/harness/plugin_qemu_guest.py",
                    shares=["/tmp/clone", "/var/tmp/venv"])
    init = (tmp_path / "initramfs" / "init").read_text()
    tmpfs_at = init.index("mount -t tmpfs")
    for index, path in enumerate(["/tmp/clone", "/var/tmp/venv"]):
        line = next(line for line in init.splitlines() if f"share{index} /host{path}" in line)
        assert init.index(line) > tmpfs_at and f"mkdir -p /host{path}" in line

"""Boot a Debian kernel under qemu (software emulation) to run the plugin code where ipvlan exists.

The host kernel has no ipvlan (PLATFORM.md). Debian's 6.1 kernel has it as a module: fetched by
its exact package name, unpacked with dpkg -x and cached under /var/cache/bayctl-ci/qemu. A
tiny busybox initramfs loads the modules (virtio + 9p to mount the host's / read-only, then
ipvlan, dummy, veth, sch_ingress, cls_bpf), mounts the host root over 9p and runs a guest
script with the host's own python3 and this checkout. Lines the script prints starting with
RESULT_TAG come back on the serial console.

`python3 tests/harness/plugin_qemu.py` fetches the kernel (tools/setup.d/30-docker.sh runs it).
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

CACHE = "/var/cache/bayctl-ci/qemu"
RESULT_TAG = "BPLG-RESULT "
# What the guest needs; their dependencies are added in load order from each module's own
# `depends=` (the package ships no modules.dep).
BOOT_MODULES = ["virtio_pci", "9pnet_virtio", "9p"]
NET_MODULES = ["ipvlan", "dummy", "veth", "sch_ingress", "cls_bpf"]


def newest_kernel_package():
    """The newest linux-image-6.1.0-<N>-amd64 the Debian mirror has (by exact name, no glob)."""
    out = subprocess.run(["apt-cache", "search", "--names-only", r"^linux-image-6\.1\.0-[0-9]+-amd64$"],
                         capture_output=True, text=True, check=True).stdout
    names = re.findall(r"^(linux-image-6\.1\.0-(\d+)-amd64) ", out, re.M)
    if not names:
        raise RuntimeError("no linux-image-6.1.0-<N>-amd64 in the apt cache (run apt-get update)")
    return max(names, key=lambda n: int(n[1]))[0]


def ensure_kernel():
    """Path of the unpacked kernel tree (boot/vmlinuz-*, lib/modules/*), fetching it once."""
    existing = sorted(glob.glob(os.path.join(CACHE, "linux-image-6.1.0-*-amd64", "boot", "vmlinuz-*")))
    if existing:
        return os.path.dirname(os.path.dirname(existing[-1]))
    package = newest_kernel_package()
    os.makedirs(CACHE, exist_ok=True)
    work = tempfile.mkdtemp(dir=CACHE)
    try:
        subprocess.run(["apt-get", "download", "-q", package], cwd=work, check=True, capture_output=True)
        deb = glob.glob(os.path.join(work, "*.deb"))[0]
        tree = os.path.join(work, "tree")
        subprocess.run(["dpkg", "-x", deb, tree], check=True)
        final = os.path.join(CACHE, package)
        os.rename(tree, final)
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _depends(path):
    with open(path, "rb") as f:
        data = f.read()
    at = data.find(b"\0depends=")
    if at < 0:
        return []
    value = data[at + len("\0depends="):data.index(b"\0", at + 1)].decode()
    return [name for name in value.split(",") if name]


def load_order(tree, wanted):
    """`wanted` and everything they depend on, each after its dependencies."""
    order = []

    def visit(name, path=()):
        if name in order:
            return
        if name in path:
            raise RuntimeError(f"module dependency cycle through {name}")
        for dep in _depends(_module_path(tree, name)):
            visit(dep, (*path, name))
        order.append(name)

    for name in wanted:
        visit(name)
    return order


def _module_path(tree, name):
    found = glob.glob(os.path.join(tree, "lib", "modules", "*", "kernel", "**", f"{name}.ko"), recursive=True)
    if not found:
        raise RuntimeError(f"module {name} not in {tree}")
    return found[0]


INIT = """#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /host
$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
$B mount -t devtmpfs dev /dev
for m in {modules}; do $B insmod /mods/$m.ko || echo "BPLG-INIT insmod $m failed"; done
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host \\
    || echo "BPLG-INIT 9p mount failed"
for d in tmp run var/tmp; do $B mount -t tmpfs tmpfs /host/$d || echo "BPLG-INIT tmpfs $d failed"; done
{shares}$B mount -t proc proc /host/proc || echo "BPLG-INIT proc failed"
$B mount -t sysfs sys /host/sys || echo "BPLG-INIT sysfs failed"
$B mount -t devtmpfs dev /host/dev || echo "BPLG-INIT devtmpfs failed"
$B mount -t bpf bpf /host/sys/fs/bpf || echo "BPLG-INIT bpffs failed"
$B mount -t cgroup2 cgroup2 /host/sys/fs/cgroup || echo "BPLG-INIT cgroup2 failed"
$B grep -c . /proc/mounts
# switch_root, not chroot: the host root must be the top of the mount namespace's root, or a
# process that joins a container's mount namespace (`docker exec`, `runc exec`) lands in this
# initramfs instead of the container's root (runc pivots the container onto the mount under "/").
exec $B switch_root /host /bin/sh -c '/usr/bin/env -i PATH={path} HOME=/root PYTHONDONTWRITEBYTECODE=1 \\
    {python} {script} {args}; echo "BPLG-INIT guest script exited $?"; /usr/bin/busybox poweroff -f'
echo "BPLG-INIT switch_root failed"
$B poweroff -f
"""


# The guest gets fresh tmpfs on these (its own /tmp, /run); host files under them are hidden.
GUEST_TMPFS = ("/tmp", "/run", "/var/tmp")


def hidden_paths(paths):
    """Of the host directories the guest needs, those its tmpfs mounts would hide (outermost only)."""
    hidden = sorted({os.path.realpath(path) for path in paths
                     if any(os.path.realpath(path).startswith(top + "/") for top in GUEST_TMPFS)})
    return [path for path in hidden if not any(path.startswith(outer + "/") for outer in hidden)]


def guest_needs(script):
    """The host directories the guest script runs from: the script's checkout, this Python (a
    virtualenv under /tmp has its interpreter and site-packages there) and bayctl's code."""
    import bayctl
    return [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(script)))), sys.prefix,
            os.path.dirname(os.path.abspath(sys.executable)),
            os.path.dirname(os.path.dirname(bayctl.__file__))]


def _share_tag(index):
    return f"share{index}"


def build_initramfs(tree, workdir, script, args=(), shares=()):
    root = os.path.join(workdir, "initramfs")
    os.makedirs(os.path.join(root, "bin"))
    os.makedirs(os.path.join(root, "mods"))
    shutil.copy(shutil.which("busybox"), os.path.join(root, "bin", "busybox"))
    modules = load_order(tree, BOOT_MODULES + NET_MODULES)
    for name in modules:
        shutil.copy(_module_path(tree, name), os.path.join(root, "mods", f"{name}.ko"))
    path = os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/sbin", "/usr/local/bin",
                            "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    # Each hidden directory comes back over a 9p share of its own, at the same path.
    mounts = "".join(f"$B mkdir -p /host{path} && $B mount -t 9p -o trans=virtio,version=9p2000.L,ro,"
                     f"msize=262144,cache=loose {_share_tag(i)} /host{path}"
                     f' || echo "BPLG-INIT share {path} failed"\n'
                     for i, path in enumerate(shares))
    init = INIT.format(modules=" ".join(modules), path=path, python=sys.executable,
                       script=script, args=" ".join(args), shares=mounts)
    with open(os.path.join(root, "init"), "w") as f:
        f.write(init)
    os.chmod(os.path.join(root, "init"), 0o755)
    image = os.path.join(workdir, "initramfs.cpio.gz")
    listing = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
    cpio = subprocess.run(["busybox", "cpio", "-o", "-H", "newc"], cwd=root, input=listing,
                          capture_output=True, check=True).stdout
    with open(image, "wb") as f:
        f.write(subprocess.run(["gzip", "-1"], input=cpio, capture_output=True, check=True).stdout)
    return image


def boot(script, args=(), timeout=600, memory_mb=1536):
    """Boot once, run `script` (a path on the host, seen at the same path in the guest).

    Returns (results: list of JSON-decoded RESULT_TAG lines, console: str).
    """
    import json

    tree = ensure_kernel()
    kernel = glob.glob(os.path.join(tree, "boot", "vmlinuz-*"))[0]
    workdir = tempfile.mkdtemp(prefix="bplg-qemu-", dir="/var/tmp")
    try:
        shares = hidden_paths(guest_needs(script))
        initrd = build_initramfs(tree, workdir, script, args, shares)
        command = ["qemu-system-x86_64", "-accel", "tcg", "-m", str(memory_mb), "-smp", "1", "-nographic",
                   "-no-reboot", "-nic", "none", "-kernel", kernel, "-initrd", initrd,
                   # no_timer_check: on a loaded host, software emulation can miss the kernel's
                   # IO-APIC timer check ("IO-APIC + timer doesn't work!" panic at 0.06 s).
                   "-append", "console=ttyS0 quiet loglevel=3 panic=-1 no_timer_check",
                   # multidevs=remap: / spans several host filesystems; without it their inode
                   # numbers collide and the guest mounts /proc etc. on the wrong directories.
                   "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                              "multidevs=remap"]
        for index, path in enumerate(shares):
            command += ["-virtfs", f"local,path={path},mount_tag={_share_tag(index)},security_model=none,"
                                   "readonly=on,multidevs=remap"]
        run = subprocess.run(command, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        console = run.stdout.decode(errors="replace")
        results = [json.loads(line.split(RESULT_TAG, 1)[1]) for line in console.splitlines()
                   if RESULT_TAG in line]
        return results, console
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    print(ensure_kernel())

"""The image's block-device layout: DIB's default, or one without partitions.

DIB partitions the loop device with kpartx, which needs device-mapper. Where the kernel
has none (containers, some CI machines) the only layout that builds is one ext4
filesystem on the whole loop device: DIB's bootloader element then installs GRUB with
blocklists, which boots under qemu/KVM (measured), and cloud images are grown by
cloud-utils without a partition table to edit.
"""

import shutil

# DIB_BLOCK_DEVICE_CONFIG accepts the YAML itself (not only file://PATH).
FLAT_EXT4_LAYOUT = """\
- local_loop:
    name: image0
- mkfs:
    name: mkfs_root
    base: image0
    type: ext4
    label: cloudimg-rootfs
- mount:
    name: mount_mkfs_root
    base: mkfs_root
    mount_point: /
- fstab:
    name: fstab_mkfs_root
    base: mount_mkfs_root
    options: defaults
    fsck-passno: 1
"""

# The kernel lists its device-mapper driver here. /dev/mapper/control alone proves nothing:
# installing kpartx/dmsetup creates the node even where the kernel has no driver behind it.
KERNEL_MISC_DEVICES = "/proc/misc"


def has_device_mapper(misc=KERNEL_MISC_DEVICES):
    """Partitioned layouts need both the kernel's device-mapper and kpartx."""
    try:
        with open(misc) as f:
            in_kernel = any(line.split()[-1:] == ["device-mapper"] for line in f)
    except OSError:
        in_kernel = False
    return in_kernel and shutil.which("kpartx") is not None


def block_device_env(environ, misc=KERNEL_MISC_DEVICES):
    """The DIB_BLOCK_DEVICE_CONFIG to add: none if the caller chose one or DIB's default builds."""
    if environ.get("DIB_BLOCK_DEVICE_CONFIG") or has_device_mapper(misc):
        return {}
    return {"DIB_BLOCK_DEVICE_CONFIG": FLAT_EXT4_LAYOUT}

"""The image's block-device layout: DIB's default, or one without partitions.

DIB partitions the loop device with kpartx, which needs device-mapper. Where the kernel
has none (containers, some CI machines) the only layout that builds is one ext4
filesystem on the whole loop device: DIB's bootloader element then installs GRUB with
blocklists, which boots under qemu/KVM (measured), and cloud images are grown by
cloud-utils without a partition table to edit.
"""

import os
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

DEVICE_MAPPER_CONTROL = "/dev/mapper/control"


def has_device_mapper(control=DEVICE_MAPPER_CONTROL):
    """Partitioned layouts need both the kernel's device-mapper and kpartx."""
    return os.path.exists(control) and shutil.which("kpartx") is not None


def block_device_env(environ, control=DEVICE_MAPPER_CONTROL):
    """The DIB_BLOCK_DEVICE_CONFIG to add: none if the caller chose one or DIB's default builds."""
    if environ.get("DIB_BLOCK_DEVICE_CONFIG") or has_device_mapper(control):
        return {}
    return {"DIB_BLOCK_DEVICE_CONFIG": FLAT_EXT4_LAYOUT}

# Node images: diskimage-builder (PyPI, the "image" extra) and what it calls on the
# host. kpartx is listed because DIB's partitioned layouts need it where device-mapper
# exists; without device-mapper bayctl builds an unpartitioned image instead.
# apt-utils (apt-ftparchive) indexes the stand-in Mesos packages the image tests serve
# from a local apt repository; qemu-system-x86 boots the built image once in the tests.
APT_PACKAGES+=(debootstrap qemu-utils squashfs-tools gdisk dosfstools parted e2fsprogs xfsprogs
    sudo curl git kpartx apt-utils qemu-system-x86)
PIP_EXTRAS+=(image)

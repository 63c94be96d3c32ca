# Node images: diskimage-builder (PyPI, the "image" extra) and what it calls on the
# host. kpartx is listed because DIB's partitioning needs it where device-mapper
# exists; here bayctl's wrapper falls back to a no-partition layout. qemu-system-x86
# boots the built image once (the optional boot test); dpkg-dev builds the stand-in
# Mesos packages the image tests serve from a local apt repository.
APT_PACKAGES+=(debootstrap qemu-utils squashfs-tools gdisk dosfstools parted e2fsprogs xfsprogs
    sudo curl git kpartx dpkg-dev apt-utils qemu-system-x86 python3-venv)
PIP_EXTRAS+=(image)

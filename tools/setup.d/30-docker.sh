# Container plugins: the tests start their own dockerd (Debian's docker.io; the system
# service is not used) and build their image from busybox-static; containernetworking-plugins
# gives the CNI tests a real delegated IPAM plugin (host-local) to call. The ipvlan tier boots
# Debian's 6.1 kernel under qemu (the host kernel has no ipvlan): fetched once by exact name
# into /var/cache/bayctl-ci/qemu.
APT_PACKAGES+=(docker.io busybox-static tar util-linux containernetworking-plugins qemu-system-x86 cpio)
# (pyroute2, the node side's library, is a base dependency of bayctl)
POST_INSTALL+=("python3 tests/harness/plugin_qemu.py >/dev/null")

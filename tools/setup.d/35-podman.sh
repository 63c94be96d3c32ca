# The podman tier (tests/functional/test_podman_cni.py, marker `podman`): Debian's podman 4.3
# drives this tree's bayctl-cni through its CNI backend (network_backend = "cni"), running
# containers with runc. Nothing is pulled: the test imports a busybox image built from
# busybox-static (30-docker.sh).
APT_PACKAGES+=(podman runc containernetworking-plugins)

# Container plugins: the tests start their own dockerd (Debian's docker.io; the system
# service is not used) and build their image from busybox-static; containernetworking-plugins
# gives the CNI tests a real delegated IPAM plugin (host-local) to call.
APT_PACKAGES+=(docker.io busybox-static tar util-linux containernetworking-plugins)
PIP_EXTRAS+=(node)

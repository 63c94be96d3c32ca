# Mesos is packaged by no distribution: point the build at an apt repository
# that has the `mesos` and `marathon` packages, as one sources.list line
# ("deb [signed-by=...] URL SUITE COMPONENT") or as the URL of a flat
# repository (one directory with a Packages index).
export DIB_MESOS_APT_REPO=${DIB_MESOS_APT_REPO:-}
# The repository's signing key (a file on the build host, ASCII-armored or
# binary). Without one, a URL-only DIB_MESOS_APT_REPO is marked trusted=yes.
export DIB_MESOS_APT_KEY=${DIB_MESOS_APT_KEY:-}
# ...and/or a directory of .deb files on the build host (e.g. packages built
# with mesos' own packaging); they are installed before the repository's.
export DIB_MESOS_DEB_DIR=${DIB_MESOS_DEB_DIR:-}
# 1: also install the master role's packages (marathon, zookeeperd).
export DIB_MESOS_MASTER_PACKAGES=${DIB_MESOS_MASTER_PACKAGES:-1}
# Where the agent's CNI isolator finds network configurations: where bayctl-hostgw
# writes each node's own network.
export DIB_MESOS_CNI_CONFIG_DIR=${DIB_MESOS_CNI_CONFIG_DIR:-/etc/bayctl/cni}
# The Mesos network (CNI network name) bayctl's plugin serves by default.
export DIB_MESOS_CNI_NETWORK=${DIB_MESOS_CNI_NETWORK:-bayctl}
# Container addresses of that network (bayctl's IPAM); per node, set by user data.
export DIB_MESOS_CNI_SUBNET=${DIB_MESOS_CNI_SUBNET:-10.20.0.0/16}

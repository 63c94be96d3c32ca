# Where bayctl's node side comes from: a directory of wheels (bayctl's own
# wheel and those of its "node" dependencies, installed offline) or a single
# wheel or sdist of bayctl (its dependencies then come from the package
# index). `bayctl image build` builds it from its checkout and sets this.
export DIB_BAYCTL_SOURCE=${DIB_BAYCTL_SOURCE:-}
# The virtualenv bayctl is installed into; the units run its console scripts.
export DIB_BAYCTL_VENV=${DIB_BAYCTL_VENV:-/opt/bayctl}
# Where the CNI plugin executable `bayctl-cni` is linked, for Mesos'
# network/cni isolator (the mesos element points the agent at it).
export DIB_BAYCTL_CNI_PLUGINS_DIR=${DIB_BAYCTL_CNI_PLUGINS_DIR:-/usr/lib/bayctl/cni}

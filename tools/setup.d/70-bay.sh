# Bays: the local bay runs one OpenSSH sshd per node (namespaces on this machine) and reaches
# them like a cloud bay's nodes (asyncssh, the "seed" extra); `bayctl verify --html` pages
# are checked in headless Chromium (Debian's chromium) by the tests.
APT_PACKAGES+=(openssh-server openssh-client iproute2 util-linux curl chromium)
# (asyncssh and pyroute2 are base dependencies of bayctl)

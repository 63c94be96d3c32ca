# Opt-in REAL Nova 34 + Placement 16 + neutron-server 29 beside the cloud tier (BAYCTL_REAL_NOVA=1,
# BAYCTL_REAL_NEUTRON=1; tests/cloudtier/nova_real.py, neutron_real.py, tools/try-real-nova):
# libvirt (nova-compute's libvirt driver, qemu TCG) and Open vSwitch (its userspace datapath:
# this kernel has no openvswitch module) from Debian, the services in their own virtualenv under
# /var/cache/bayctl-ci/realnova (a few minutes once, then reused). The daemons are only ever
# started by the tests, with private sockets; Debian's own units stay unused.
APT_PACKAGES+=(libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config
              openvswitch-switch genisoimage)
POST_INSTALL+=("python3 -c 'import sys; sys.path.insert(0, \"tests\"); from cloudtier import nova_real; print(nova_real.ensure_venv())' || echo 'tools/setup.d/47-realnova.sh: no real-nova venv (see above); BAYCTL_REAL_NOVA=1 will fail' >&2")

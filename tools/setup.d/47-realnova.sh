# Opt-in REAL Nova 34 + Placement 16 + neutron-server 29 beside the cloud tier (BAYCTL_REAL_NOVA=1,
# BAYCTL_REAL_NEUTRON=1; tests/harness/cloudtier/nova_real.py, neutron_real.py, tools/try-real-nova):
# libvirt (nova-compute's libvirt driver, qemu TCG) and Open vSwitch (its userspace datapath:
# this kernel has no openvswitch module) from Debian, the services in their own virtualenv under
# /var/cache/bayctl-ci/realnova (a few minutes once, then reused). The daemons are only ever
# started by the tests, with private sockets; Debian's own units stay unused.
# Opt-in, so installed only where it is asked for: CI's default run does not start them (about
# 1.3 GB of services and 5-13 min a boot; see docs/platform-nova-neutron.md).
if [[ "${BAYCTL_REAL_NOVA:-0}" == 1 || "${BAYCTL_REAL_NEUTRON:-0}" == 1 ]]; then
    APT_PACKAGES+=(libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config
                   openvswitch-switch genisoimage)
    POST_INSTALL+=("(cd tests && python3 -c 'from harness.cloudtier import nova_real; print(nova_real.ensure_venv())') || echo 'tools/setup.d/47-realnova.sh: no real-nova venv (see above); BAYCTL_REAL_NOVA=1 will fail' >&2")
fi

# The VM tier (tests marked vm, tests/harness/emulators/vms.py): the Nova emulator writes each
# server's config drive with genisoimage (as nova-compute does) and forwards the guests'
# wait-condition signals to Heat on 127.0.0.1 through socat (qemu guestfwd cmd:).
# qemu-system-x86 and qemu-utils come with 40-image.sh.
APT_PACKAGES+=(genisoimage socat)

# Magnum 10.0.0's mesos fragments read the node's address from `eth0`
# (configure-mesos-master.sh, configure-mesos-slave.sh: `ip addr show eth0`), as
# on the Ubuntu 14.04 images that driver was written for: the kernel's own names
# (eth0, eth1, ...) instead of predictable ones (ens3). After the bootloader
# element's default (its 10-bootloader-default-cmdline), added once.
case " ${DIB_BOOTLOADER_DEFAULT_CMDLINE:-} " in
    *" net.ifnames=0 "*) ;;
    *) export DIB_BOOTLOADER_DEFAULT_CMDLINE="${DIB_BOOTLOADER_DEFAULT_CMDLINE:-nofb nomodeset gfxpayload=text} net.ifnames=0" ;;
esac

"""The container link modes a network config or an option may name (links.py makes them).

Apart from links.py so that checking a config (the CNI plugin, before anything is touched)
does not load the netlink library.
"""

VETH = "veth"
IPVLAN_MODES = {"ipvlan-l2": 0, "ipvlan-l3": 1, "ipvlan-l3s": 2}  # name -> the kernel's ipvlan mode
MODES = (VETH, *IPVLAN_MODES)
AUTO = "auto"

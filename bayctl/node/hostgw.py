"""Container networking of a cloud bay: one container subnet per node, derived, routed host-gw.

Every node of a cloud bay has one address on the bay's private network (e.g. 10.0.0.0/24).
The bay's container range (BaySpec `container_cidr`, default 10.100.0.0/16) is cut into one
subnet per possible address of the private network, in order: the node whose private address
is host number N of the private network owns subnet number N of the range

    private 10.0.0.0/24, containers 10.100.0.0/16:  10.0.0.N  ->  10.100.N.0/24

so the node at boot and bayctl (collect-nodes) compute the same subnet from the same two
ranges and the address, with nobody telling anybody: this works for Heat bays and for Magnum
clusters alike, and for nodes added later. At boot each node (`bayctl node hostgw`, from its
user data or the image's unit) writes its CNI network config for its own subnet, turns on
forwarding, and routes every other host's subnet via that host's private address ("host-gw":
the private network is one L2 segment, so the next hop is on-link; routes to hosts that do
not exist just stay unresolved). Neutron must let the container addresses through the ports
(the templates give the slaves' ports an allowed_address_pair for the whole range and let
the range in through the security groups).

Limit: a node's subnet is the range's prefix plus the private network's host bits; it must
be a /26 or larger (the top quarter of it is kept for `bayctl verify`'s probes), so a /24
private network needs a container range of /18 or larger. The two ranges must not overlap.

This module runs on the nodes: no cloud imports.
"""

import ipaddress
import json
import os
import subprocess

DEFAULT_CONTAINER_CIDR = "10.100.0.0/16"
DEFAULT_PRIVATE_CIDR = "10.0.0.0/24"
SMALLEST_NODE_SUBNET = 26  # verify's probes take the top quarter (a /28) of it
DEFAULT_CNI_DIR = "/etc/bayctl/cni"
CNI_NETWORK = "bayctl"  # the Mesos network name tasks ask for
CNI_CONFIG_NAME = "10-bayctl.conf"


class RangeError(ValueError):
    """The container range does not fit the private network (the message says how)."""


def node_prefix(private_cidr: str, container_cidr: str) -> int:
    """Prefix length of one node's container subnet; RangeError if the ranges do not fit."""
    try:
        private = ipaddress.ip_network(private_cidr, strict=True)
    except ValueError as err:
        raise RangeError(f"private network {private_cidr!r}: {err}") from None
    try:
        containers = ipaddress.ip_network(container_cidr, strict=True)
    except ValueError as err:
        raise RangeError(f"{container_cidr!r} is not an IPv4 network ({err})") from None
    if private.version != 4 or containers.version != 4:
        raise RangeError("only IPv4 ranges are supported")
    if containers.overlaps(private):
        raise RangeError(f"{containers} overlaps the bay's private network {private}")
    prefix = containers.prefixlen + (32 - private.prefixlen)
    if prefix > SMALLEST_NODE_SUBNET:
        largest = SMALLEST_NODE_SUBNET - (32 - private.prefixlen)
        raise RangeError(f"{containers} is too small for the private network {private}: each of its "
                         f"{private.num_addresses} addresses needs a /{SMALLEST_NODE_SUBNET} or larger, "
                         f"so the range must be a /{largest} or larger")
    return prefix


def container_subnet(private_ip: str, private_cidr: str, container_cidr: str) -> str:
    """The container subnet owned by the node at `private_ip`."""
    prefix = node_prefix(private_cidr, container_cidr)
    private = ipaddress.ip_network(private_cidr)
    address = ipaddress.ip_address(private_ip)
    if address not in private:
        raise RangeError(f"{private_ip} is not in the bay's private network {private}")
    host = int(address) - int(private.network_address)
    containers = ipaddress.ip_network(container_cidr)
    first = int(containers.network_address) + host * (1 << (32 - prefix))
    return str(ipaddress.ip_network((first, prefix)))


def container_subnets(private_ips: dict, private_cidr: str, container_cidr: str) -> dict:
    """node name -> container subnet, for nodes given as name -> private address."""
    return {name: container_subnet(ip, private_cidr, container_cidr) for name, ip in private_ips.items()}


def peer_routes(private_ip: str, private_cidr: str, container_cidr: str):
    """(subnet, next hop) for every other host of the private network, skipping its network and
    broadcast addresses."""
    private = ipaddress.ip_network(private_cidr)
    for host in private.hosts():
        if str(host) != private_ip:
            yield container_subnet(str(host), private_cidr, container_cidr), str(host)


def cni_config(subnet: str, link_mode: str = "auto") -> dict:
    """The node's Mesos CNI network: the lower half of its subnet (the top quarter is verify's)."""
    network = ipaddress.ip_network(subnet)
    pool = next(network.subnets(prefixlen_diff=1))
    return {"cniVersion": "1.0.0", "name": CNI_NETWORK, "type": "bayctl-cni", "linkMode": link_mode,
            "ipam": {"type": "bayctl", "subnet": str(pool)}}


# --- on the node ---------------------------------------------------------------------------------

def _ip(*argv, netns_input=None):
    done = subprocess.run(["ip", *argv], input=netns_input, capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(argv[:3])}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def private_address(private_cidr: str):
    """(address, interface) of this node on the private network."""
    network = ipaddress.ip_network(private_cidr)
    for entry in json.loads(_ip("-4", "-j", "addr", "show") or "[]"):
        for info in entry.get("addr_info", []):
            if info.get("family") == "inet" and ipaddress.ip_address(info["local"]) in network:
                return info["local"], entry["ifname"]
    raise OSError(f"this node has no address in the bay's private network {private_cidr}")


def apply(container_cidr: str, private_cidr: str, cni_dir: str = DEFAULT_CNI_DIR,
          write_cni: bool = True) -> dict:
    """Configure this node: forwarding, the peers' routes, and (slaves) the CNI network config.
    Idempotent (routes are replaced, the config rewritten)."""
    address, ifname = private_address(private_cidr)
    own = container_subnet(address, private_cidr, container_cidr)
    with open("/proc/sys/net/ipv4/ip_forward", "w") as handle:  # containers' traffic crosses this node
        handle.write("1\n")
    batch = "".join(f"route replace {subnet} via {hop} dev {ifname}\n"
                    for subnet, hop in peer_routes(address, private_cidr, container_cidr))
    _ip("-batch", "-", netns_input=batch)
    written = None
    if write_cni:
        os.makedirs(cni_dir, exist_ok=True)
        written = os.path.join(cni_dir, CNI_CONFIG_NAME)
        tmp = written + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(cni_config(own), handle, indent=1)
            handle.write("\n")
        os.replace(tmp, written)
    return {"address": address, "interface": ifname, "subnet": own, "cni_config": written,
            "routes": batch.count("\n")}

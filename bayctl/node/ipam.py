"""Address pools and reservations for container interfaces, kept on disk.

One JSON state file (see statefile.py): every allocation is a locked read-modify-write with
an atomic replace, so concurrent requests (threads of the Docker plugin, or many CNI plugin
processes) never hand out one address twice, and reservations survive a restart.

State: {"pools": {pool_id: {"subnet": cidr, "next": int, "addresses": {ip: owner}}}}.
"""

import ipaddress

from bayctl.errors import NodeError
from bayctl.node.statefile import StateFile


class Ipam:
    def __init__(self, state_path):
        self.store = StateFile(state_path, default={"pools": {}})

    # -- pools --------------------------------------------------------------------------------

    def create_pool(self, subnet, *, pool_id=None, reuse=False):
        """Create the pool for `subnet` (IPv4) and return its id (the subnet itself by default).

        An existing pool with the same id is an error unless `reuse` (the CNI plugin creates
        its pool on first use); a pool overlapping another one is always an error.
        """
        network = _network(subnet)
        pool_id = pool_id or str(network)
        with self.store.update() as state:
            pools = state["pools"]
            if pool_id in pools:
                if reuse and pools[pool_id]["subnet"] == str(network):
                    return pool_id
                raise NodeError(f"address pool {network} already exists")
            for other_id, other in pools.items():
                if _network(other["subnet"]).overlaps(network):
                    raise NodeError(f"address pool {network} overlaps pool {other_id} ({other['subnet']})")
            pools[pool_id] = {"subnet": str(network), "next": 0, "addresses": {}}
        return pool_id

    def release_pool(self, pool_id):
        with self.store.update() as state:
            state["pools"].pop(pool_id, None)

    def pool(self, pool_id):
        pool = self.store.read()["pools"].get(pool_id)
        if pool is None:
            raise NodeError(f"no address pool {pool_id}")
        return pool

    def pools(self):
        return self.store.read()["pools"]

    # -- addresses ----------------------------------------------------------------------------

    def allocate(self, pool_id, address=None, owner=""):
        """Reserve `address` (must be free) or the next free one; returns "ip/prefixlen".

        The search starts after the last address handed out, so an address just released is
        not given to the next container at once (stale ARP entries and conntrack).
        """
        with self.store.update() as state:
            pool = state["pools"].get(pool_id)
            if pool is None:
                raise NodeError(f"no address pool {pool_id}")
            network = ipaddress.ip_network(pool["subnet"])
            held = pool["addresses"]
            if address:
                ip = ipaddress.ip_interface(address).ip
                if ip not in network or ip in (network.network_address, network.broadcast_address):
                    raise NodeError(f"address {ip} is not a host address of pool {network}")
                if str(ip) in held:
                    raise NodeError(f"address {ip} is already in use in pool {network}")
            else:
                ip = _next_free(network, held, pool["next"])
                pool["next"] = int(ip) - int(network.network_address)
            held[str(ip)] = owner
            return f"{ip}/{network.prefixlen}"

    def release(self, pool_id, address):
        """Free an address; freeing a free address (or in a vanished pool) is not an error."""
        ip = str(ipaddress.ip_interface(address).ip)
        with self.store.update() as state:
            pool = state["pools"].get(pool_id)
            if pool is not None:
                pool["addresses"].pop(ip, None)

    def release_owner(self, pool_id, owner):
        """Free every address reserved for `owner` (CNI DEL knows the container, not the address)."""
        with self.store.update() as state:
            pool = state["pools"].get(pool_id)
            if pool is None:
                return []
            mine = [ip for ip, who in pool["addresses"].items() if who == owner]
            for ip in mine:
                del pool["addresses"][ip]
            return mine

    def release_owners_except(self, pool_id, keep):
        """Free every address whose owner is not in `keep` (CNI GC); returns {owner: [ip]}."""
        with self.store.update() as state:
            pool = state["pools"].get(pool_id)
            if pool is None:
                return {}
            stale = {}
            for ip, who in list(pool["addresses"].items()):
                if who not in keep:
                    stale.setdefault(who, []).append(ip)
                    del pool["addresses"][ip]
            return stale

    def owned(self, pool_id, owner):
        pool = self.store.read()["pools"].get(pool_id)
        if pool is None:
            return []
        network = ipaddress.ip_network(pool["subnet"])
        return [f"{ip}/{network.prefixlen}" for ip, who in pool["addresses"].items() if who == owner]

    def addresses(self, pool_id):
        """ip -> owner of every reserved address of a pool."""
        return dict(self.pool(pool_id)["addresses"])


def _network(subnet):
    try:
        network = ipaddress.ip_network(subnet, strict=True)
    except ValueError as e:
        raise NodeError(f"subnet {subnet!r}: {e}") from None
    if network.version != 4:
        raise NodeError(f"subnet {subnet}: only IPv4 pools are supported")
    if network.num_addresses < 4:
        raise NodeError(f"subnet {subnet} is too small (at least a /30)")
    return network


def _next_free(network, held, last):
    size = network.num_addresses
    base = int(network.network_address)
    # Host addresses are 1 .. size-2; try each once, starting after the last one given.
    for step in range(1, size - 1):
        offset = (last + step - 1) % (size - 2) + 1
        candidate = ipaddress.ip_address(base + offset)
        if str(candidate) not in held:
            return candidate
    raise NodeError(f"address pool {network} is exhausted ({size - 2} addresses in use)")

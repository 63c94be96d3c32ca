"""Port security around a Magnum cluster, for what bayctl adds to it.

Magnum's own Mesos templates (mesos_ubuntu_v1) leave two things closed that bayctl's Heat
templates open themselves; bayctl opens them once the cluster is up:
- the slaves' ports have no allowed address pairs, so Neutron would drop every packet a slave
  forwards for its containers (their source addresses are in the bay's container range, not
  the port's fixed IP): the container range is added to each slave's port;
- the master's security group lets in only 22, 5050, 8080 and the masters themselves, so the
  slaves cannot reach the master's ZooKeeper (2181): not Mesos's own master detection (its
  slaves' --master is zk://), and not bayctl's agents watching the bay's policy there. A rule
  lets the slaves' security group in on that port.
(Magnum's slave security group already lets tcp, udp and icmp in from anywhere.)

The ports are the Neutron ports of the cluster's own stack, told apart by their fixed IPs:
nothing outside the cluster is touched, and a re-run changes nothing.
"""

from bayctl.cloud.heat_client import heat
from bayctl.errors import CloudError
from bayctl.model import ZOOKEEPER_PORT

NEUTRON_PORT = "OS::Neutron::Port"


def stack_ports(conn, stack_ref: str):
    """The Neutron ports of the cluster's stack (its nested stacks too), read once."""
    return [conn.network.get_port(r.physical_resource_id)
            for r in heat(conn).resources.list(stack_ref, nested_depth=3)
            if r.resource_type == NEUTRON_PORT and r.physical_resource_id]


def _addresses(port):
    return {entry.get("ip_address") for entry in port.fixed_ips or []}


def allow_container_range(conn, ports, slave_ips, container_cidr: str, stack_ref: str) -> int:
    """Add {ip_address: container_cidr} to the pairs of each slave's port; returns how many
    ports changed. A stack with no Neutron ports at all (a test stand-in) is left alone."""
    if not ports:
        return 0
    wanted, changed = set(slave_ips), 0
    for port in ports:
        addresses = _addresses(port)
        if not addresses & wanted:
            continue  # the master's, or a load balancer's
        wanted -= addresses
        pairs = list(port.allowed_address_pairs or [])
        if any(pair.get("ip_address") == container_cidr for pair in pairs):
            continue
        conn.network.update_port(port, allowed_address_pairs=pairs + [{"ip_address": container_cidr}])
        changed += 1
    if wanted:
        raise CloudError(f"stack {stack_ref}: no Neutron port holds {', '.join(sorted(wanted))}, so the "
                         f"container range {container_cidr} cannot be allowed on it")
    return changed


def open_zookeeper_to_slaves(conn, ports, master_ips, slave_ips) -> int:
    """Let the slaves' security groups in on ZooKeeper's port of each master's security group
    (tcp 2181, remote group); returns how many rules were added. Ports without security groups
    (port security off) need nothing."""
    masters, slaves = set(master_ips), set(slave_ips)
    master_groups = {g for p in ports if _addresses(p) & masters for g in p.security_group_ids or []}
    slave_groups = {g for p in ports if _addresses(p) & slaves for g in p.security_group_ids or []}
    added = 0
    for group_id in sorted(master_groups):
        group = conn.network.get_security_group(group_id)
        opened = {rule.get("remote_group_id") for rule in group.security_group_rules or []
                  if _lets_in_zookeeper(rule)}
        for remote in sorted(slave_groups - opened - {group_id}):
            conn.network.create_security_group_rule(
                security_group_id=group_id, direction="ingress", ethertype="IPv4", protocol="tcp",
                port_range_min=ZOOKEEPER_PORT, port_range_max=ZOOKEEPER_PORT, remote_group_id=remote,
                description="bayctl: the slaves reach the master's ZooKeeper")
            added += 1
    return added


def _lets_in_zookeeper(rule) -> bool:
    low, high = rule.get("port_range_min"), rule.get("port_range_max")
    return (rule.get("direction") == "ingress" and rule.get("protocol") in ("tcp", "6")
            and (low is None or low <= ZOOKEEPER_PORT <= (high if high is not None else low)))

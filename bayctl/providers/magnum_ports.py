"""Port security for a Magnum cluster's container range.

Magnum's own Mesos templates (mesos_ubuntu_v1) give the slaves' ports no allowed address
pairs, so Neutron would drop every packet a slave forwards for its containers (their source
addresses are in the bay's container range, not the port's fixed IP). bayctl's Heat templates
set the pair themselves; for a Magnum cluster bayctl adds it to the slaves' ports once the
cluster is up. (Magnum's slave security group already lets tcp, udp and icmp in from anywhere.)

The ports are the Neutron ports of the cluster's own stack whose fixed IP is a slave's private
address: nothing outside the cluster is touched, and a re-run changes nothing.
"""

from bayctl.cloud.heat_client import heat
from bayctl.errors import CloudError

NEUTRON_PORT = "OS::Neutron::Port"


def allow_container_range(conn, stack_ref: str, slave_ips, container_cidr: str) -> int:
    """Add {ip_address: container_cidr} to the pairs of each slave's port; returns how many
    ports changed. A stack with no Neutron ports at all (a test stand-in) is left alone."""
    resources = [r for r in heat(conn).resources.list(stack_ref, nested_depth=3)
                 if r.resource_type == NEUTRON_PORT and r.physical_resource_id]
    if not resources:
        return 0
    wanted, changed = set(slave_ips), 0
    for resource in resources:
        port = conn.network.get_port(resource.physical_resource_id)
        addresses = {entry.get("ip_address") for entry in port.fixed_ips or []}
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

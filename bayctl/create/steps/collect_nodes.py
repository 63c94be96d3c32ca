"""Read the bay's nodes (master first, then slaves) from the provider into the bay's state.

Each slave's container subnet goes into the state too (verify places its probes there): the
local provider names its own; on a cloud it is derived from the slave's private address the
same way the node derives it at boot (bayctl.node.hostgw).

A Magnum cluster's slave ports are given the container range as an allowed address pair.

Where the provider knows its nodes' host keys up front (the local bay made them), they
are recorded now, so even the first SSH contact is checked rather than trusted.
"""

import dataclasses
import os

from bayctl.create.steps import Step
from bayctl.errors import CloudError
from bayctl.providers.base import MASTER, SLAVE


class CollectNodes(Step):
    name = "collect-nodes"
    title = "Collecting the nodes"

    def run(self, ctx):
        nodes = ctx.provider.nodes(ctx.state.ref)
        masters = [node for node in nodes if node.role == MASTER]
        slaves = [node for node in nodes if node.role == SLAVE]
        if len(masters) != 1 or not masters[0].public_ip:
            raise CloudError(f"bay {ctx.spec.name}: expected one master with a public address, "
                             f"the provider reported {len(masters)}")
        if len(slaves) != ctx.spec.slaves:
            raise CloudError(f"bay {ctx.spec.name}: expected {ctx.spec.slaves} slaves, "
                             f"the provider reported {len(slaves)}")
        ctx.state.nodes = [dataclasses.asdict(node) for node in nodes]
        ctx.save()
        ctx.state.extra["container_subnets"] = container_subnets(ctx, slaves)
        from bayctl.verify.run import probe_subnets

        ctx.state.extra["probe_subnets"] = probe_subnets(ctx.state.extra["container_subnets"])
        ctx.save()
        if ctx.provider.name == "magnum":
            allow_container_range(ctx, slaves)
        known = getattr(ctx.provider, "host_keys", None)
        if known is not None:
            record_host_keys(ctx.state.directory, known(ctx.state.ref))
        ctx.status.update(", ".join(f"{n.name} {n.public_ip or n.private_ip}" for n in nodes))


def container_subnets(ctx, slaves) -> dict:
    """slave name -> its container subnet."""
    named = getattr(ctx.provider, "container_subnets", None)
    if named is not None:
        return named(ctx.state.ref)
    from bayctl.node.hostgw import RangeError, container_subnet

    request = ctx.request()
    try:
        return {node.name: container_subnet(node.private_ip, request.private_cidr, ctx.spec.container_cidr)
                for node in slaves}
    except (RangeError, TypeError, ValueError) as err:
        raise CloudError(f"bay {ctx.spec.name}: no container subnet for its slaves: {err}") from None


def allow_container_range(ctx, slaves) -> None:
    """Magnum's own templates leave the slaves' ports without the container range's address
    pair (bayctl's Heat templates set it): add it (bayctl.providers.magnum_ports)."""
    from bayctl.providers.magnum_ports import allow_container_range as allow

    provider = ctx.provider
    stack_ref = provider._stack_ref(provider._cluster(ctx.state.ref))  # the provider's own lookups
    changed = allow(provider.conn, stack_ref, [node.private_ip for node in slaves], ctx.spec.container_cidr)
    if changed:
        ctx.status.update(f"allowed {ctx.spec.container_cidr} on {changed} slave port(s)")


def record_host_keys(bay_dir, keys):
    """Add `address -> public key` lines to the bay's known_hosts (the file bayctl.seed reads)."""
    from bayctl.remote.hostkeys import KNOWN_HOSTS_NAME

    path = os.path.join(bay_dir, KNOWN_HOSTS_NAME)
    present = set()
    if os.path.exists(path):
        with open(path) as handle:
            present = {line.split()[0] for line in handle if line.strip() and not line.startswith("#")}
    with open(path, "a") as handle:
        for address, key in keys.items():
            if address not in present:
                handle.write(f"{address} {key}\n")

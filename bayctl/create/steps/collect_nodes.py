"""Read the bay's nodes (master first, then slaves) from the provider into the bay's state.

Each slave's container subnet goes into the state too (verify places its probes there): the
provider names it (Provider.container_subnets: by default derived from the slave's private
address the same way the node derives it at boot, bayctl.node.hostgw).

Then the provider may adjust the cloud around the nodes (Provider.prepare_nodes: a Magnum
cluster's slave ports get the container range as an allowed address pair).

Where the provider knows its nodes' host keys up front (the local bay made them), they
are recorded now, so even the first SSH contact is checked rather than trusted.
"""

import os

from bayctl.create.steps import Step
from bayctl.errors import CloudError
from bayctl.model import MASTER, slaves_of


class CollectNodes(Step):
    name = "collect-nodes"
    title = "Collecting the nodes"

    def run(self, ctx):
        provider, ref = ctx.provider, ctx.state.ref
        nodes = provider.nodes(ref)
        masters = [node for node in nodes if node.role == MASTER]
        slaves = slaves_of(nodes)
        if len(masters) != 1 or not masters[0].public_ip:
            raise CloudError(f"bay {ctx.spec.name}: expected one master with a public address, "
                             f"the provider reported {len(masters)}")
        if len(slaves) != ctx.spec.slaves:
            raise CloudError(f"bay {ctx.spec.name}: expected {ctx.spec.slaves} slaves, "
                             f"the provider reported {len(slaves)}")
        ctx.state.nodes = list(nodes)
        ctx.save()
        request = ctx.request()
        ctx.state.container_subnets = provider.container_subnets(ref, nodes, request)
        from bayctl.verify.run import probe_subnets

        ctx.state.probe_subnets = probe_subnets(ctx.state.container_subnets)
        ctx.save()
        changed = provider.prepare_nodes(ref, nodes, request)
        if changed:
            ctx.status.update(changed)
        record_host_keys(ctx.state.directory, provider.host_keys(ref))
        ctx.status.update(", ".join(f"{n.name} {n.public_ip or n.private_ip}" for n in nodes))


def record_host_keys(bay_dir, keys):
    """Add `address -> public key` lines to the bay's known_hosts (the file bayctl.seed reads)."""
    if not keys:
        return
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

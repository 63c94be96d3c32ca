"""Set up the bay's ZooKeeper as the way policy reaches the slaves (bayctl.distribution).

Where the provider runs a ZooKeeper bayctl can reach (the local bay's master), the bay's
znodes and secrets are made and every slave's agent is given its read secret over SSH, once;
later `policy apply` writes the policy there. Elsewhere, or with `--distribution ssh`, the
bay stays on SSH seeding.
"""

from bayctl.create.steps import Step


class SetupDistribution(Step):
    name = "setup-distribution"
    title = "Setting up policy distribution through the bay's ZooKeeper"

    def skip_reason(self, ctx):
        from bayctl.distribution import SSH, STATE_KEY

        if ctx.spec.distribution == SSH:
            ctx.state.extra[STATE_KEY] = SSH
            return "distribution ssh: policy is pushed to each slave over SSH"
        if _hosts(ctx) is None:
            if ctx.spec.distribution == "zookeeper":
                return None   # run() says why it cannot
            ctx.state.extra[STATE_KEY] = SSH
            if hasattr(ctx.provider, "zookeeper_hosts"):
                return ("no ZooKeeper on this machine (Debian's zookeeper package): policy is pushed "
                        "to each slave over SSH")
            return (f"the {ctx.provider.name} provider's ZooKeeper is not reachable from bayctl yet: "
                    "policy is pushed to each slave over SSH")
        return None

    def run(self, ctx):
        from bayctl.distribution.bootstrap import setup_zookeeper
        from bayctl.errors import SpecError

        hosts = _hosts(ctx)
        if hosts is None:
            raise SpecError(f"distribution zookeeper: the {ctx.provider.name} bay has no ZooKeeper bayctl "
                            "can reach (use distribution ssh)", field="distribution")
        setup_zookeeper(ctx.state, ctx.nodes, hosts,
                        ssh_user=ctx.ssh_user, ssh_key=ctx.ssh_key, owns_root=ctx.is_local,
                        status=ctx.status)


def _hosts(ctx):
    """host:port of the bay's ZooKeeper as bayctl reaches it, or None."""
    if not hasattr(ctx.provider, "zookeeper_hosts"):
        return None
    return ctx.provider.zookeeper_hosts(ctx.state.ref or ctx.spec.name)

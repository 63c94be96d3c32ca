"""Set up the bay's ZooKeeper as the way policy reaches the slaves (bayctl.distribution).

The bay's znodes and secrets are made and every slave's agent is given its read secret over
SSH, once; later `policy apply` writes the policy there. The local bay: its master's
ZooKeeper, reached directly (the default where Debian's zookeeper is installed). A cloud bay:
the ZooKeeper its master runs for Mesos, reached through the master's SSH (port 2181 is open
to the bay's network only) -- with `--distribution zookeeper` only, until the VM tier has
shown it on real cloud images; `auto` keeps cloud bays on SSH seeding.
"""

from bayctl.create.steps import Step

ZOOKEEPER_PORT = 2181


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
            if ctx.provider.info.runs_own_zookeeper:
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
        own = ctx.provider.info.runs_own_zookeeper
        setup_zookeeper(ctx.state, ctx.state.nodes, hosts, ssh_user=ctx.login.user, ssh_key=ctx.login.key,
                        owns_root=own, tunnel=not own, status=ctx.status)


def _hosts(ctx):
    """host:port of the bay's ZooKeeper (as its slaves reach it), or None."""
    if ctx.provider.info.runs_own_zookeeper:
        return ctx.provider.zookeeper_hosts(ctx.state.ref or ctx.spec.name)
    master = ctx.state.master
    if ctx.spec.distribution == "zookeeper" and master is not None and master.private_ip:
        return f"{master.private_ip}:{ZOOKEEPER_PORT}"
    return None

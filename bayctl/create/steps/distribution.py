"""Set up the bay's ZooKeeper as the way policy reaches the slaves (bayctl.distribution).

The bay's znodes and secrets are made and every slave's agent is given its read secret over
SSH, once; later `policy apply` writes the policy there. The local bay: its master's
ZooKeeper, reached directly (the default where Debian's zookeeper is installed). A cloud bay:
the ZooKeeper its master runs for Mesos, reached through the master's SSH (port 2181 is open
to the bay's network only). `auto` takes it where the provider says the master runs one
(its master_zookeeper: bayctl's Heat master signals it once its ZooKeeper answered; Magnum's
Mesos master always runs one), and falls back to SSH seeding when it cannot be set up, its
slaves' agents included; `--distribution zookeeper` insists.
"""

import logging

from bayctl.create.steps import Step
from bayctl.model import ZOOKEEPER_PORT

LOG = logging.getLogger(__name__)


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
            return (f"the {ctx.provider.name} bay's master states no ZooKeeper: policy is pushed to each "
                    "slave over SSH")
        return None

    def run(self, ctx):
        from bayctl.distribution.bootstrap import setup_zookeeper
        from bayctl.errors import BayctlError, SpecError

        hosts = _hosts(ctx)
        if hosts is None:
            raise SpecError(f"distribution zookeeper: the {ctx.provider.name} bay has no ZooKeeper bayctl "
                            "can reach (use distribution ssh)", field="distribution")
        own = ctx.provider.info.runs_own_zookeeper
        try:
            setup_zookeeper(ctx.state, ctx.state.nodes, hosts, ssh_user=ctx.login.user, ssh_key=ctx.login.key,
                            owns_root=own, tunnel=not own, status=ctx.status)
        except BayctlError as exc:
            if ctx.spec.distribution != AUTO or own:
                raise
            _fall_back_to_ssh(ctx, exc)


AUTO = "auto"


def _hosts(ctx):
    """host:port of the bay's ZooKeeper (as its slaves reach it), or None."""
    if ctx.provider.info.runs_own_zookeeper:
        return ctx.provider.zookeeper_hosts(ctx.state.ref or ctx.spec.name)
    master = ctx.state.master
    if master is None or not master.private_ip or ctx.spec.distribution not in (AUTO, "zookeeper"):
        return None
    stated = _stated(ctx)
    if ctx.spec.distribution == "zookeeper":
        return stated or f"{master.private_ip}:{ZOOKEEPER_PORT}"
    return stated


def _stated(ctx):
    """The ZooKeeper the provider says the bay's master runs, None when it says none or cannot
    be read (auto then seeds over SSH: the bootstrap path works anyway)."""
    from bayctl.errors import CloudError

    if not ctx.state.ref:
        return None
    try:
        return ctx.provider.master_zookeeper(ctx.state.ref)
    except CloudError:
        return None


def _fall_back_to_ssh(ctx, exc):
    """auto, and the stated ZooKeeper could not be set up: the bay is seeded over SSH, and
    nothing of ZooKeeper's is kept (no credentials: later applies do not try it either; agents
    already configured are told to forget theirs)."""
    import os

    from bayctl.distribution import SSH, STATE_KEY
    from bayctl.distribution.bootstrap import forget_zookeeper
    from bayctl.distribution.zookeeper import STATE_FILE
    from bayctl.errors import BayctlError

    try:
        os.unlink(os.path.join(ctx.state.directory, STATE_FILE))
    except FileNotFoundError:
        pass
    try:
        forget_zookeeper(ctx.state, ctx.state.nodes, ssh_user=ctx.login.user, ssh_key=ctx.login.key)
    except BayctlError as forgot:  # an agent unreachable now is reached by the seeding next anyway
        LOG.warning("telling the agents to forget the bay's ZooKeeper: %s", forgot)
    ctx.state.extra[STATE_KEY] = SSH
    ctx.state.save()
    if ctx.status is not None:
        ctx.status.update(f"the master's ZooKeeper cannot be used ({exc}): policy is pushed over SSH")

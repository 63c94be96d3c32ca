"""Seed the bay's group policy on every slave (bayctl.seed: SSH through the master, read-back).

An unchanged node (same digest) is not rewritten, so a re-run costs one read per node.
"""

from bayctl.create.steps import Step


class SeedPolicy(Step):
    name = "seed-policy"
    title = "Seeding the group policy"

    def skip_reason(self, ctx):
        if not ctx.spec.policy:
            return "no policy given: the slaves deny all container traffic until one is applied"
        return None

    def run(self, ctx):
        from bayctl import history
        from bayctl.distribution import put_policy

        # The bay's way (setup-distribution chose it): its ZooKeeper, or SSH.
        login = ctx.login
        put_policy(ctx.state, ctx.state.nodes, ctx.spec.policy, ssh_user=login.user, ssh_key=login.key,
                   status=ctx.status, action=history.CREATE)

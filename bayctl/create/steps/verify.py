"""Optional last step (`create --verify`): measure the connectivity matrix inside the bay and
compare it with what the policy implies; any difference fails the create."""

from bayctl.create.steps import Step
from bayctl.errors import BayctlError


class VerifyFailed(BayctlError):
    """The measured connectivity differs from the policy."""


class Verify(Step):
    name = "verify"
    title = "Verifying the policy inside the bay"

    def skip_reason(self, ctx):
        if not ctx.options.verify:
            return "not asked for (--verify)"
        if not ctx.spec.policy:
            return "no policy to verify"
        return None

    def run(self, ctx):
        from bayctl.verify import verify_bay_state

        login = ctx.login
        report = verify_bay_state(ctx.state, ctx.state.nodes, ssh_user=login.user, ssh_key=login.key,
                                  status=ctx.status)
        if report.mismatches:
            first = report.mismatches[0]
            raise VerifyFailed(f"{len(report.mismatches)} of {len(report.pairs)} probes differ from the "
                               f"policy, e.g. {first.describe()}; see `bayctl verify {ctx.spec.name}`")
        ctx.status.update(f"{len(report.pairs)} probes match the policy")

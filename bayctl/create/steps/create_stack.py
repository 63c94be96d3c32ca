"""Ask the provider for the bay: a Heat stack, a Magnum cluster, or local namespaces.

Providers' create() is idempotent (an existing bay of this name is returned, not doubled),
so a re-run after Ctrl-C finds what the first run started.
"""

from bayctl.create.steps import Step


class CreateStack(Step):
    name = "create-stack"
    title = "Creating the bay's nodes"

    def run(self, ctx):
        ref = ctx.provider.create(ctx.request())
        ctx.state.ref = ref
        ctx.save()
        ctx.status.update(f"{ctx.provider.name} bay {ref}")

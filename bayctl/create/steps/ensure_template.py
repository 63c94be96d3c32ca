"""Make sure what the provider builds from exists: a Magnum cluster template (magnum only).

The heat provider creates its stack from bayctl's own bayctl/share/heat_templates/ and needs nothing
beforehand; a local bay needs nothing either.
"""

from bayctl.create.steps import Step


class EnsureTemplate(Step):
    name = "ensure-template"
    title = "Ensuring the cluster template"

    def skip_reason(self, ctx):
        if not ctx.provider.info.uses_template:
            return f"provider {ctx.provider.name} builds without a template"
        return None

    def run(self, ctx):
        ctx.state.template_id = ctx.provider.ensure_template(ctx.request())
        ctx.status.update(f"template {ctx.state.template_id}")

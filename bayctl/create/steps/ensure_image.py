"""Make sure the node image is in Glance (cloud providers; a local bay's nodes are namespaces)."""

from bayctl.create.steps import Step
from bayctl.errors import CloudError


class EnsureImage(Step):
    name = "ensure-image"
    title = "Checking the node image"

    def skip_reason(self, ctx):
        if not ctx.provider.info.needs_image:
            return f"provider {ctx.provider.name} boots no image (its nodes are made on this machine)"
        return None

    def run(self, ctx):
        image = ctx.spec.image
        # The image must carry bayctl's node side (agent, plugins) and Mesos; building it
        # takes minutes, so create does not do it behind the user's back: it names the command.
        found = ctx.conn.image.find_image(image, ignore_missing=True)
        if found is None:
            raise CloudError(f"image {image!r} is not in Glance: build and upload it first with "
                             f"`bayctl image build --upload --name {image}`")
        if getattr(found, "status", "active") != "active":
            raise CloudError(f"image {image!r} is {found.status}, not active")
        ctx.state.image_id = found.id
        ctx.status.update(f"{image} ({found.id}) active")

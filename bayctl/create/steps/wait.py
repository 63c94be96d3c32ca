"""Wait for the provider to finish building, reporting every event as progress."""

import time

from bayctl.create.steps import Step


class Wait(Step):
    name = "wait"
    title = "Waiting for the nodes"

    def run(self, ctx):
        elapsed = time.monotonic() - ctx.started
        remaining = max(60.0, ctx.spec.timeout - elapsed)

        def progress(event):
            ctx.status.update(event.message, event.done, event.total)

        ctx.provider.wait(ctx.state.ref, progress=progress, timeout=remaining)

"""The create steps, one module each. pipeline.STEPS puts them in order.

A step is named, idempotent (it checks what exists before making anything, so a re-run
resumes), and may skip itself when it does not apply (a local bay has no image to upload).
"""

from typing import Optional


class Step:
    """One step of `bayctl create mesosbay`."""

    name = "step"
    title = "A step"

    def skip_reason(self, ctx) -> Optional[str]:
        """Why this step does nothing for this bay, or None to run it."""
        return None

    def run(self, ctx) -> None:
        raise NotImplementedError

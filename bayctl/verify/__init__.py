"""bayctl.verify: measure a bay's connectivity matrix and compare it with its policy.

    report = verify_bay_state(state, nodes, ssh_user=..., ssh_key=...)
    report.pairs, report.mismatches, report.to_json(), report.grid(), html.render(report)
"""

__all__ = ["Report", "VerifyError", "verify_bay_state"]


def __getattr__(name):
    # Lazy: the probe helper (python -m bayctl.verify.node, one per node holding probes) imports
    # this package too, and needs none of the controller's SSH and policy machinery.
    if name == "Report":
        from bayctl.verify.report import Report

        return Report
    if name in ("VerifyError", "verify_bay_state"):
        from bayctl.verify import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

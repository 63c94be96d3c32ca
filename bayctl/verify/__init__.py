"""bayctl.verify: measure a bay's connectivity matrix and compare it with its policy.

    report = verify_bay_state(state, nodes, ssh_user=..., ssh_key=...)
    report.pairs, report.mismatches, report.to_json(), html.render(report)
"""

from bayctl.verify.report import Report
from bayctl.verify.run import VerifyError, verify_bay_state

__all__ = ["Report", "VerifyError", "verify_bay_state"]

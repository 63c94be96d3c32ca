"""Prerequisites of tests: skip with the reason outside CI, fail under CI=true.

A missing tool, kernel feature or privilege must never turn CI green by skipping:
`.ci/run` installs everything, so under CI a missing prerequisite is a defect.
"""

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition, reason):
    """Skip (outside CI) or fail (under CI) unless `condition` holds."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"prerequisite missing under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def require_root():
    require(os.geteuid() == 0, "needs root (network namespaces, bpffs, tc)")


def require_tools(*names):
    for name in names:
        require(shutil.which(name) is not None, f"needs `{name}` on PATH (tools/setup-dev installs it)")

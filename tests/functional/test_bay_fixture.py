"""The pytest plugin's `bay` fixture, used as a test suite outside bayctl would use it."""

import os

import pytest
from harness.prereq import require_root, require_tools

from bayctl.policy import load_policy
from bayctl.providers import local_net

pytestmark = [pytest.mark.root, pytest.mark.sshd]


@pytest.fixture(scope="module")
def local_bay(request):
    require_root()
    require_tools("ip", "nsenter", "setsid", "ssh-keygen", "sshd")
    return request.getfixturevalue("bay")


def test_bay_fixture_gives_a_seeded_local_bay_that_verifies(local_bay):
    from bayctl.pytest_plugin import DEFAULT_POLICY

    assert [node.role for node in local_bay.nodes] == ["master", "slave", "slave"]
    assert local_bay.state.policy_digest == load_policy(DEFAULT_POLICY).digest
    assert os.path.exists(local_net.netns_path(local_bay.name, "slave1"))
    report = local_bay.verify()
    assert report.pairs and not report.mismatches, [p.describe() for p in report.mismatches]

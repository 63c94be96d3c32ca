"""Suite-wide fixtures. Room-specific fixtures live in the tests/harness/fixtures_*.py plugins."""

import os
import sys

# tests/ on sys.path: test modules and bench/ import the harness package (harness.prereq, ...).
sys.path.insert(0, os.path.dirname(__file__))

pytest_plugins = [
    "harness.fixtures_agent",
    "harness.fixtures_cloud",
    "harness.fixtures_docker",
    "harness.fixtures_fakeservers",
    "harness.fixtures_image",
    "harness.fixtures_localbay",
    "harness.fixtures_magnum",
    "harness.fixtures_sshd",
    "harness.fixtures_vm",
]


def pytest_configure(config):
    """Refuse, in one line, a session that would test another checkout's code."""
    import pytest
    from harness.tree_check import TREE, foreign_code

    problem = foreign_code()
    if problem:
        raise pytest.UsageError(f"{problem}: run `pip install -e {TREE}` with the Python that runs the "
                                "tests (or put its bin directory first on PATH)")

"""Suite-wide fixtures. Room-specific fixtures live in tests/fixtures_*.py plugins."""

import os
import sys

# tests/ on sys.path: test modules import `prereq` and the fixture plugins by name.
sys.path.insert(0, os.path.dirname(__file__))

pytest_plugins = ["fixtures_sshd", "fixtures_docker", "fixtures_agent", "fixtures_cloud", "fixtures_image",
                  "fixtures_fakeservers", "fixtures_magnum", "fixtures_vm",
                  "fixtures_localbay"]


def pytest_configure(config):
    """Refuse, in one line, a session that would test another checkout's code."""
    import pytest
    from tree_check import TREE, foreign_code

    problem = foreign_code()
    if problem:
        raise pytest.UsageError(f"{problem}: run `pip install -e {TREE}` with the Python that runs the "
                                "tests (or put its bin directory first on PATH)")

"""pytest plugin: a `bay` fixture giving a test a real local bay with a group policy.

Installed with bayctl (entry point `pytest11`), so any test suite can write::

    def test_web_reaches_db(bay):
        report = bay.verify()
        assert not report.mismatches
        bay.apply_policy("my-policy.yaml")

The bay is made once per test session (creating one takes seconds, not milliseconds) and
deleted at the end, leaving nothing behind. Options (command line or ini):

    --bay-policy FILE   policy seeded at create: a file or an example's name
                        (ini: bay_policy; default: web-db)
    --bay-slaves N      number of slaves (ini: bay_slaves; default 2)
    --bay-name NAME     bay name (ini: bay_name; default bb-pytest-<pid>)

It needs what a local bay needs: root, iproute2, OpenSSH's sshd (tools/setup-dev).
"""

import os

import pytest

from bayctl.share import example_policies, policy_path

DEFAULT_POLICY = example_policies()["web-db"]


def pytest_addoption(parser):
    group = parser.getgroup("bayctl", "bayctl local bay fixture")
    group.addoption("--bay-policy", default=None,
                    help="policy seeded on the `bay` fixture's slaves: a file, or a shipped example's name "
                         "(web-db); a file of that name wins")
    group.addoption("--bay-slaves", default=None, type=int, help="slaves of the `bay` fixture (default 2)")
    group.addoption("--bay-name", default=None, help="name of the `bay` fixture's bay")
    parser.addini("bay_policy", "policy file seeded on the `bay` fixture's slaves", default=None)
    parser.addini("bay_slaves", "slaves of the `bay` fixture", default=None)
    parser.addini("bay_name", "name of the `bay` fixture's bay", default=None)


def _setting(config, name, default):
    value = config.getoption(f"--bay-{name}") or config.getini(f"bay_{name}")
    return value if value not in (None, "") else default


@pytest.fixture(scope="session")
def bay(request, tmp_path_factory):
    """A local bay (master + slaves as namespaces, each with sshd and agent), policy seeded."""
    from bayctl import api
    from bayctl.create.state import ENV_STATE_DIR

    config = request.config
    name = _setting(config, "name", f"bb-pytest-{os.getpid()}")
    policy = policy_path(_setting(config, "policy", DEFAULT_POLICY))  # a file or an example's name
    slaves = int(_setting(config, "slaves", 2))
    # The bay's state lives with the session's temporary files unless BAYCTL_STATE_DIR says
    # otherwise: a test run never mixes its bay with the machine's own bays.
    set_here = ENV_STATE_DIR not in os.environ
    if set_here:
        os.environ[ENV_STATE_DIR] = str(tmp_path_factory.mktemp("bayctl-bays"))
    try:
        handle = api.create_bay(name, provider="local", slaves=slaves, policy=policy)
        try:
            yield handle
        finally:
            api.delete_bay(name)
    finally:
        if set_here:
            os.environ.pop(ENV_STATE_DIR, None)

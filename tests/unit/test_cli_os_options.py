"""The OpenStack options of bayctl's commands: every command that may reach a cloud takes
`--os-cloud`/`--cloud` and the `--os-*` set, before the command (global) or after it."""

import argparse

import pytest

from bayctl.cli.main import COMMANDS, BayctlApp
from bayctl.cloud import connection

# Every command that may talk to a cloud (issue 12, item 4).
CLOUD_COMMANDS = ("create mesosbay", "delete bay", "list", "show", "verify", "policy apply",
                  "image upload", "image list", "image build", "preflight", "stack diagnose")
REQUIRED = {  # positional arguments and required options, to parse a whole command line
    "create mesosbay": ["b1"], "delete bay": ["b1"], "show": ["b1"], "verify": ["b1"],
    "policy apply": ["web-db", "--bay", "b1"], "image upload": ["f.qcow2", "--name", "n"],
    "preflight": ["--image", "i", "--keypair", "k", "--master-flavor", "m", "--external-network", "e"],
    "stack diagnose": ["s"],
}


def parse(argv):
    """(app-level options, command-level options, command) as `bayctl ARGV` would parse them."""
    app = BayctlApp()
    app.argv = list(argv)
    if any(a.startswith("--os-") for a in argv):
        connection.add_cloud_arguments(app.parser, argv)
    app.options, rest = app.parser.parse_known_args(argv)
    factory, name, sub_argv = app.command_manager.find_command(rest)
    command = factory(app, app.options, cmd_name=name)
    parsed = command.get_parser(f"bayctl {name}").parse_args(sub_argv)
    return app.options, parsed, command


@pytest.fixture(autouse=True)
def no_clouds_yaml(monkeypatch, tmp_path):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "none.yaml"))
    for key in ("OS_CLOUD", "OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_REGION_NAME"):
        monkeypatch.delenv(key, raising=False)


def test_every_cloud_command_is_registered():
    assert set(CLOUD_COMMANDS) <= set(COMMANDS)


@pytest.mark.parametrize("name", CLOUD_COMMANDS)
@pytest.mark.parametrize("where", ["after", "before"])
def test_os_options_on_every_cloud_command(name, where):
    os_args = ["--os-cloud", "c1", "--os-auth-url", "http://127.0.0.1:9/v3", "--os-region-name", "r1",
               "--os-username", "u1", "--os-project-name", "p1", "--os-interface", "internal"]
    command_words = name.split() + REQUIRED.get(name, [])
    argv = command_words + os_args if where == "after" else os_args + command_words
    app_options, parsed, command = parse(argv)
    merged = command.os_options(parsed)
    assert (merged.os_cloud, merged.os_region_name) == ("c1", "r1")
    assert merged.os_auth_url == "http://127.0.0.1:9/v3"
    assert (merged.os_username, merged.os_project_name, merged.os_interface) == ("u1", "p1", "internal")
    # Only cloud options reach openstacksdk: not the command's own (--image, --name, ...).
    assert set(vars(merged)) - {"_cloud_dests"} <= {d for d in vars(merged) if d.startswith("os_")}


@pytest.mark.parametrize("name", CLOUD_COMMANDS)
def test_cloud_is_another_spelling_of_os_cloud(name):
    _, parsed, command = parse(name.split() + REQUIRED.get(name, []) + ["--cloud", "c2"])
    assert command.os_options(parsed).os_cloud == "c2"


def test_after_the_command_wins_over_before():
    _, parsed, command = parse(["--os-region-name", "before", "list", "--cloud", "after"])
    merged = command.os_options(parsed)
    assert (merged.os_cloud, merged.os_region_name) == ("after", "before")


def test_environment_is_left_to_openstacksdk(monkeypatch):
    # OS_* never become option values: a clouds.yaml entry named on the line is not overridden
    # by the environment (openstacksdk reads OS_* itself when no cloud is named).
    monkeypatch.setenv("OS_AUTH_URL", "http://127.0.0.1:9/from-env")
    monkeypatch.setenv("OS_REGION_NAME", "env-region")
    _, parsed, command = parse(["list", "--os-cloud", "c1"])
    merged = command.os_options(parsed)
    assert merged.os_cloud == "c1"
    assert not hasattr(merged, "os_auth_url") and not hasattr(merged, "os_region_name")


def test_create_keeps_its_own_timeout_and_records_the_cloud():
    _, parsed, command = parse(["create", "mesosbay", "b1", "--timeout", "120", "--os-cloud", "c1"])
    assert parsed.timeout == "120"  # create's --timeout (a spec field), not keystoneauth's session timeout
    assert command.os_options(parsed).os_cloud == "c1"


def test_command_line_cloud_decides_provider_auto():
    from bayctl.create.pipeline import resolve_provider_name
    from bayctl.spec import BaySpec

    spec = BaySpec(name="b1")
    assert resolve_provider_name(spec, None) == "local"
    with connection.using_options(argparse.Namespace(_cloud_dests=["os_auth_url"],
                                                     os_auth_url="http://127.0.0.1:9/v3")):
        assert resolve_provider_name(spec, None) == "auto"
    assert resolve_provider_name(spec, None) == "local"


def test_node_commands_do_not_load_openstacksdk():
    # Node commands run over SSH on every slave: building the --os-* set would cost ~0.4 s each.
    import subprocess
    import sys

    code = ("import argparse, sys; from bayctl.cli.main import BayctlApp; "
            "from bayctl.cli.os_options import add_os_options; BayctlApp(); "
            "add_os_options(argparse.ArgumentParser(), ['node', 'show']); print('openstack' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

"""The devstack plugin, phase by phase, as stack.sh / clean.sh source it.

devstack's own helpers the plugin calls (is_service_enabled, trueorfalse, install_package,
setup_develop, echo_summary, die, sudo) are stood in by functions that record their calls
(tests/harness/devstack_harness.py, shared with test_devstack_tier.py, which runs the REAL bayctl
against the cloud tier); here `bayctl` is stood in too, by a script that records its
arguments and environment and then parses them with bayctl's REAL command-line parser, so a
flag the real CLI does not have fails the phase exactly as it would on a devstack host.
"""

import getpass
import subprocess
import sys

import pytest
from harness.devstack_harness import PLUGIN_DIR, ROOT, flag, named, read_calls, write_harness
from harness.prereq import require, require_tools

# `bayctl` stood in: record, then parse with the real CLI's parser (exit 2 on a bad flag).
BAYCTL_STANDIN = """#!{python}
import os, sys
sys.path.insert(0, {root!r})
with open(os.environ["BSEED_CALLS"], "a") as calls:
    calls.write("\\x1f".join(["bayctl", "OS_CLOUD=" + os.environ.get("OS_CLOUD", ""),
                              "BAYCTL_STATE_DIR=" + os.environ.get("BAYCTL_STATE_DIR", ""),
                              "BAYCTL_HEAT_ENVIRONMENTS=" + os.environ.get("BAYCTL_HEAT_ENVIRONMENTS", "")]
                             + sys.argv[1:]) + "\\n")
from bayctl.cli.main import BayctlApp
app = BayctlApp()
try:
    factory, name, rest = app.command_manager.find_command(sys.argv[1:])
except ValueError as exc:
    sys.exit(f"bayctl stand-in: {{exc}}")
factory(app, None, cmd_name=name).get_parser("bayctl " + name).parse_args(rest)
"""


DEVSTACK_CLOUDS_YAML = """\
clouds:
  devstack-admin:
    auth:
      auth_url: http://127.0.0.1:9/identity
      username: admin
      project_name: admin
      user_domain_id: default
      project_domain_id: default
    region_name: RegionOne
    identity_api_version: 3
"""


def run_plugin(tmp_path, *mode, enabled="glance,heat", disabled="", env=None, sudo_runs=False,
               stack_user="stack"):
    """Source settings + plugin.sh like devstack does for `mode`; -> (exit code, calls, output)."""
    calls = tmp_path / "calls"
    calls.write_text("")
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    standin = bindir / "bayctl"
    standin.write_text(BAYCTL_STANDIN.format(python=sys.executable, root=ROOT))
    standin.chmod(0o755)
    harness = write_harness(str(tmp_path), mode, dest=f"{tmp_path}/opt", data_dir=f"{tmp_path}/data",
                            enabled=enabled, disabled=disabled, sudo_runs=sudo_runs, stack_user=stack_user)
    # devstack writes /etc/openstack/clouds.yaml with a `devstack-admin` cloud; stood in here
    # (openstacksdk looks the cloud up while bayctl builds its --os-* options).
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(DEVSTACK_CLOUDS_YAML)
    environ = {"PATH": f"{bindir}:/usr/bin:/bin", "BSEED_CALLS": str(calls), "HOME": str(tmp_path),
               "OS_CLIENT_CONFIG_FILE": str(clouds)}
    environ.update(env or {})
    done = subprocess.run(["bash", harness], env=environ, capture_output=True, text=True, timeout=120)
    return done.returncode, read_calls(calls), done.stdout + done.stderr


def bayctl_calls(calls):
    """bayctl invocations as (environment dict, argv)."""
    result = []
    for call in named(calls, "bayctl"):
        environ = dict(item.split("=", 1) for item in call[:3])
        result.append((environ, call[3:]))
    return result


def test_plugin_files_are_shellcheck_clean():
    require_tools("shellcheck")
    done = subprocess.run(["shellcheck", "-x", "settings", "plugin.sh"], cwd=PLUGIN_DIR,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_install_installs_build_tools_and_bayctl_with_its_controller_extras(tmp_path):
    code, calls, output = run_plugin(tmp_path, "stack", "install")
    assert code == 0, output
    packages = named(calls, "install_package")[0]
    assert {"clang", "libbpf-dev", "openssh-client", "debootstrap", "qemu-utils"} <= set(packages)
    assert named(calls, "setup_develop") == [[f"{tmp_path}/opt/bayctl", "image"]]
    assert bayctl_calls(calls) == []  # nothing touches the cloud before it is up


def test_post_config_makes_the_state_dir_for_the_stack_user(tmp_path):
    code, calls, output = run_plugin(tmp_path, "stack", "post-config")
    assert code == 0, output
    assert named(calls, "sudo") == [["install", "-d", "-o", "stack", "-m", "0700", f"{tmp_path}/data/bayctl"],
                                    ["install", "-d", "-o", "stack", f"{tmp_path}/data/bayctl-images"],
                                    ["tee", "/etc/profile.d/bayctl-devstack.sh"]]


def test_settings_define_the_plugin_and_require_heat(tmp_path):
    code, calls, output = run_plugin(tmp_path, "stack", "install")
    assert code == 0, output
    assert named(calls, "define_plugin") == [["bayctl"]]
    assert named(calls, "plugin_requires") == [["bayctl", "heat"]]


def test_post_config_exports_the_state_dir_to_the_stack_users_login_shells(tmp_path):
    # `bayctl list` as the stack user must see the bays devstack made: a login shell sources
    # the profile file post-config writes (sudo run for real here, into the test's folder).
    profile = tmp_path / "profile.sh"
    code, calls, output = run_plugin(tmp_path, "stack", "post-config", sudo_runs=True,
                                     stack_user=getpass.getuser(), env={"BAYCTL_PROFILE": str(profile)})
    assert code == 0, output
    shown = subprocess.run(["bash", "-c", f"unset BAYCTL_STATE_DIR; . {profile}; echo $BAYCTL_STATE_DIR"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert shown == f"{tmp_path}/data/bayctl"


def test_extra_with_default_settings_stops_at_once_naming_the_mesos_settings(tmp_path):
    # Default settings build the image, and Mesos is packaged nowhere: stack.sh must stop
    # before any build starts, saying which local.conf settings to set.
    code, calls, output = run_plugin(tmp_path, "stack", "extra")
    assert code != 0
    (die,) = named(calls, "die")
    assert "BAYCTL_MESOS_APT_REPO" in " ".join(die) and "BAYCTL_MESOS_DEB_DIR" in " ".join(die)
    assert bayctl_calls(calls) == []


def test_create_bay_with_default_settings_leaves_the_keypair_to_bayctl(tmp_path):
    code, calls, output = run_plugin(tmp_path, "stack", "extra",
                                     env={"BAYCTL_CREATE_BAY": "True", "BAYCTL_BUILD_IMAGE": "False"})
    assert code == 0, output
    (_, create), _ = bayctl_calls(calls)
    assert "--keypair" not in create  # the real parser accepted it; bayctl makes bayctl-devstack-bay


def test_extra_builds_and_uploads_the_image_and_creates_no_bay_by_default(tmp_path):
    code, calls, output = run_plugin(tmp_path, "stack", "extra", env={"BAYCTL_MESOS_DEB_DIR": "/srv/debs"})
    assert code == 0, output
    invocations = bayctl_calls(calls)
    assert len(invocations) == 1
    environ, argv = invocations[0]
    assert argv[:3] == ["image", "build", "--upload"]
    assert flag(argv, "--image-name") == "bayctl-mesos-node"
    assert flag(argv, "--output") == f"{tmp_path}/data/bayctl-images/bayctl-mesos-node.qcow2"
    assert "--mesos-apt-repo" not in argv and flag(argv, "--mesos-deb-dir") == "/srv/debs"
    assert environ == {"OS_CLOUD": "devstack-admin", "BAYCTL_STATE_DIR": f"{tmp_path}/data/bayctl",
                       "BAYCTL_HEAT_ENVIRONMENTS": ""}
    assert flag(argv, "--cache-dir") == f"{tmp_path}/data/bayctl-images/cache"
    assert not {"--no-compress", "--extra-element", "--elements-path", "--bayctl-source"} & set(argv)


def test_extra_passes_the_image_knobs_to_the_build(tmp_path):
    # What a site sets to build the image with its own elements, keep DIB's cache across
    # clean.sh, or reuse a build made from the same inputs (test_devstack_tier.py does that).
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    code, calls, output = run_plugin(
        tmp_path, "stack", "extra",
        env={"BAYCTL_IMAGE_EXTRA_ELEMENTS": "site-ca site-motd", "BAYCTL_IMAGE_ELEMENTS_PATH": "/srv/el",
             "BAYCTL_IMAGE_COMPRESS": "False", "BAYCTL_IMAGE_BAYCTL_SOURCE": str(wheels),
             "BAYCTL_IMAGE_CACHE_DIR": "/var/cache/bayctl-dib", "BAYCTL_MESOS_DEB_DIR": str(wheels)})
    assert code == 0, output
    (_, argv), = bayctl_calls(calls)
    assert [argv[i + 1] for i, arg in enumerate(argv) if arg == "--extra-element"] == ["site-ca", "site-motd"]
    assert flag(argv, "--elements-path") == "/srv/el"
    assert "--no-compress" in argv
    assert flag(argv, "--bayctl-source") == str(wheels)
    assert flag(argv, "--cache-dir") == "/var/cache/bayctl-dib"
    assert flag(argv, "--mesos-deb-dir") == str(wheels)


def test_extra_creates_the_bay_from_a_spec_file_with_more_heat_environments(tmp_path):
    spec = tmp_path / "bay.yaml"
    spec.write_text("ssh_user: root\ntimeout: 600\n")
    environments = "/etc/bayctl/site.yaml:/etc/bayctl/dns.yaml"
    code, calls, output = run_plugin(
        tmp_path, "stack", "extra",
        env={"BAYCTL_CREATE_BAY": "True", "BAYCTL_BUILD_IMAGE": "False", "BAYCTL_KEYPAIR": "ops",
             "BAYCTL_BAY_SPEC": str(spec), "BAYCTL_HEAT_ENVIRONMENTS": environments})
    assert code == 0, output
    (environ, create), (_, show) = bayctl_calls(calls)
    assert flag(create, "--spec") == str(spec)
    assert environ["BAYCTL_HEAT_ENVIRONMENTS"] == environments
    assert show == ["show", "devstack-bay"]


def test_extra_with_create_bay_creates_the_bay_after_the_image(tmp_path):
    code, calls, output = run_plugin(
        tmp_path, "stack", "extra",
        env={"BAYCTL_CREATE_BAY": "True", "BAYCTL_SLAVES": "3", "BAYCTL_KEYPAIR": "ops",
             "BAYCTL_BAY_NAME": "ci-bay", "PUBLIC_NETWORK_NAME": "ext-net",
             "BAYCTL_MESOS_APT_REPO": "deb [trusted=yes] http://127.0.0.1:8000/ ./"})
    assert code == 0, output
    argvs = [argv for _, argv in bayctl_calls(calls)]
    assert [argv[:2] for argv in argvs] == [["image", "build"], ["create", "mesosbay"], ["show", "ci-bay"]]
    assert flag(argvs[0], "--mesos-apt-repo") == "deb [trusted=yes] http://127.0.0.1:8000/ ./"
    create = argvs[1]
    assert create[2] == "ci-bay"
    assert flag(create, "--provider") == "heat"
    assert flag(create, "--slaves") == "3"
    assert flag(create, "--image") == flag(argvs[0], "--image-name")  # the image just uploaded
    assert flag(create, "--keypair") == "ops"
    assert flag(create, "--external-network") == "ext-net"
    assert flag(create, "--policy") == f"{tmp_path}/opt/bayctl/bayctl/share/policies/web-db.yaml"


def test_create_bay_without_heat_stops_stack_sh_with_the_reason(tmp_path):
    code, calls, output = run_plugin(tmp_path, "stack", "extra", enabled="glance",
                                     env={"BAYCTL_CREATE_BAY": "yes", "BAYCTL_BUILD_IMAGE": "False"})
    assert code != 0
    assert any("needs heat enabled" in " ".join(call) for call in named(calls, "die"))
    assert bayctl_calls(calls) == []


def test_a_failing_bayctl_command_stops_stack_sh(tmp_path):
    # A flag the real CLI refuses makes the stood-in bayctl exit 2, as the real one would.
    code, calls, output = run_plugin(tmp_path, "stack", "extra",
                                     env={"BAYCTL_CREATE_BAY": "True", "BAYCTL_SLAVES": "2",
                                          "BAYCTL_BUILD_IMAGE": "False", "BAYCTL_PROVIDER": "nova"})
    assert code != 0
    assert "invalid choice: 'nova'" in output
    assert any("creating bay" in " ".join(call) for call in named(calls, "die"))


@pytest.mark.parametrize("create_bay, deletes", [("True", True), ("False", False)])
def test_clean_deletes_the_bay_and_the_state(tmp_path, create_bay, deletes):
    code, calls, output = run_plugin(tmp_path, "clean", env={"BAYCTL_CREATE_BAY": create_bay})
    assert code == 0, output
    argvs = [argv for _, argv in bayctl_calls(calls)]
    assert argvs == ([["delete", "bay", "devstack-bay"]] if deletes else [])
    data = f"{tmp_path}/data"
    assert named(calls, "sudo") == [["rm", "-rf", f"{data}/bayctl", f"{data}/bayctl-images",
                                     "/etc/profile.d/bayctl-devstack.sh"]]


def test_unstack_leaves_the_bay_alone(tmp_path):
    code, calls, output = run_plugin(tmp_path, "unstack", env={"BAYCTL_CREATE_BAY": "True"})
    assert code == 0, output
    assert bayctl_calls(calls) == [] and named(calls, "sudo") == []


@pytest.mark.parametrize("mode", [("stack", "install"), ("stack", "extra"), ("clean",)])
def test_a_plugin_disabled_in_local_conf_does_nothing(tmp_path, mode):
    code, calls, output = run_plugin(tmp_path, *mode, disabled="bayctl", env={"BAYCTL_CREATE_BAY": "True"})
    assert code == 0, output
    # Only the settings' declarations (devstack reads them to order plugins), nothing run.
    assert [call[0] for call in calls] == ["define_plugin", "plugin_requires"]


def test_bayctl_layers_the_heat_environments_it_is_given_over_openstack_yaml(tmp_path, monkeypatch):
    # What BAYCTL_HEAT_ENVIRONMENTS does inside the real bayctl (test_devstack_tier.py: a bay).
    try:
        import heatclient  # noqa: F401
    except ImportError:
        require(False, "needs python-heatclient (a dependency of bayctl: pip install -e .)")
    from bayctl.errors import CloudError
    from bayctl.providers.heat import default_environments, templates_dir

    site, dns = tmp_path / "site.yaml", tmp_path / "dns.yaml"
    site.write_text("parameter_defaults: {}\n")
    dns.write_text("parameter_defaults: {dns_nameserver: 192.0.2.53}\n")
    monkeypatch.setenv("BAYCTL_HEAT_ENVIRONMENTS", f"{site}:{dns}")
    assert default_environments() == [f"{templates_dir()}/environments/openstack.yaml", str(site), str(dns)]
    monkeypatch.setenv("BAYCTL_HEAT_ENVIRONMENTS", f"{site}:{tmp_path}/missing.yaml")
    with pytest.raises(CloudError, match=f"BAYCTL_HEAT_ENVIRONMENTS: {tmp_path}/missing.yaml: no such file"):
        default_environments()
    monkeypatch.setenv("BAYCTL_HEAT_ENVIRONMENTS", "")  # the plugin's default: none
    assert default_environments() == [f"{templates_dir()}/environments/openstack.yaml"]

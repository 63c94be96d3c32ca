"""The devstack plugin, phase by phase, as stack.sh / clean.sh source it.

devstack's own helpers the plugin calls (is_service_enabled, trueorfalse, install_package,
setup_develop, echo_summary, die, sudo) are stood in by functions defined here that record
their calls; `bayctl` is stood in by a script that records its arguments and environment and
then parses them with bayctl's REAL command-line parser, so a flag the real CLI does not
have fails the phase exactly as it would on a devstack host.
"""

import os
import subprocess
import sys
import textwrap

import pytest
from prereq import require_tools

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PLUGIN_DIR = os.path.join(ROOT, "devstack")
SEP = "\x1f"

# devstack's helpers, stood in. trueorfalse follows devstack's functions-common exactly.
DEVSTACK_STANDINS = r"""
function _record { local IFS=$'\x1f'; printf '%s\n' "$*" >> "$BSEED_CALLS"; }
function is_service_enabled {
    local service
    for service in "$@"; do
        [[ ,${ENABLED_SERVICES}, == *,${service},* ]] && return 0
    done
    return 1
}
function enable_service {
    # devstack refuses to re-enable what local.conf disabled (disable_service).
    [[ ,${DISABLED_SERVICES:-}, == *,$1,* ]] || ENABLED_SERVICES+=",$1"
}
function trueorfalse {
    local default=$1
    local testval=${!2:-}
    case "$testval" in
        "1" | [yY]es | "YES" | [tT]rue | "TRUE" ) echo "True" ;;
        "0" | [nN]o | "NO" | [fF]alse | "FALSE" ) echo "False" ;;
        * )                                      echo "$default" ;;
    esac
}
function install_package { _record install_package "$@"; }
function setup_develop { _record setup_develop "$@"; }
function echo_summary { _record echo_summary "$*"; }
function die { _record die "$@"; exit 1; }
function sudo { _record sudo "$@"; }
"""

# `bayctl` stood in: record, then parse with the real CLI's parser (exit 2 on a bad flag).
BAYCTL_STANDIN = """#!{python}
import os, sys
sys.path.insert(0, {root!r})
with open(os.environ["BSEED_CALLS"], "a") as calls:
    calls.write("\\x1f".join(["bayctl", "OS_CLOUD=" + os.environ.get("OS_CLOUD", ""),
                              "BAYCTL_STATE_DIR=" + os.environ.get("BAYCTL_STATE_DIR", "")]
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


def run_plugin(tmp_path, *mode, enabled="glance,heat", disabled="", env=None):
    """Source settings + plugin.sh like devstack does for `mode`; -> (exit code, calls, output)."""
    calls = tmp_path / "calls"
    calls.write_text("")
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    standin = bindir / "bayctl"
    standin.write_text(BAYCTL_STANDIN.format(python=sys.executable, root=ROOT))
    standin.chmod(0o755)
    harness = tmp_path / "harness.sh"
    harness.write_text(DEVSTACK_STANDINS + textwrap.dedent(f"""
        set -o errexit
        DEST={tmp_path}/opt
        DATA_DIR={tmp_path}/data
        STACK_USER=stack
        ENABLED_SERVICES={enabled}
        DISABLED_SERVICES={disabled}
        source {PLUGIN_DIR}/settings
        source {PLUGIN_DIR}/plugin.sh {' '.join(mode)}
        """))
    # devstack writes /etc/openstack/clouds.yaml with a `devstack-admin` cloud; stood in here
    # (openstacksdk looks the cloud up while bayctl builds its --os-* options).
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(DEVSTACK_CLOUDS_YAML)
    environ = {"PATH": f"{bindir}:/usr/bin:/bin", "BSEED_CALLS": str(calls), "HOME": str(tmp_path),
               "OS_CLIENT_CONFIG_FILE": str(clouds)}
    environ.update(env or {})
    done = subprocess.run(["bash", str(harness)], env=environ, capture_output=True, text=True, timeout=120)
    recorded = [line.split(SEP) for line in calls.read_text().splitlines()]
    return done.returncode, recorded, done.stdout + done.stderr


def named(calls, name):
    return [call[1:] for call in calls if call[0] == name]


def bayctl_calls(calls):
    """bayctl invocations as (environment dict, argv)."""
    result = []
    for call in named(calls, "bayctl"):
        environ = dict(item.split("=", 1) for item in call[:2])
        result.append((environ, call[2:]))
    return result


def flag(argv, name):
    return argv[argv.index(name) + 1]


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
    assert named(calls, "setup_develop") == [[f"{tmp_path}/opt/bayctl", "cloud,seed,image"]]
    assert bayctl_calls(calls) == []  # nothing touches the cloud before it is up


def test_post_config_makes_the_state_dir_for_the_stack_user(tmp_path):
    code, calls, output = run_plugin(tmp_path, "stack", "post-config")
    assert code == 0, output
    assert named(calls, "sudo") == [["install", "-d", "-o", "stack", "-m", "0700", f"{tmp_path}/data/bayctl"],
                                    ["install", "-d", "-o", "stack", f"{tmp_path}/data/bayctl-images"]]


def test_extra_builds_and_uploads_the_image_and_creates_no_bay_by_default(tmp_path):
    code, calls, output = run_plugin(tmp_path, "stack", "extra")
    assert code == 0, output
    invocations = bayctl_calls(calls)
    assert len(invocations) == 1
    environ, argv = invocations[0]
    assert argv[:3] == ["image", "build", "--upload"]
    assert flag(argv, "--image-name") == "bayctl-mesos-node"
    assert flag(argv, "--output") == f"{tmp_path}/data/bayctl-images/bayctl-mesos-node.qcow2"
    assert "--mesos-apt-repo" not in argv
    assert environ == {"OS_CLOUD": "devstack-admin", "BAYCTL_STATE_DIR": f"{tmp_path}/data/bayctl"}


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
    assert flag(create, "--policy") == f"{tmp_path}/opt/bayctl/policy/examples/web-db.yaml"


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
    assert named(calls, "sudo") == [["rm", "-rf", f"{data}/bayctl", f"{data}/bayctl-images"]]


def test_unstack_leaves_the_bay_alone(tmp_path):
    code, calls, output = run_plugin(tmp_path, "unstack", env={"BAYCTL_CREATE_BAY": "True"})
    assert code == 0, output
    assert bayctl_calls(calls) == [] and named(calls, "sudo") == []


@pytest.mark.parametrize("mode", [("stack", "install"), ("stack", "extra"), ("clean",)])
def test_a_plugin_disabled_in_local_conf_does_nothing(tmp_path, mode):
    code, calls, output = run_plugin(tmp_path, *mode, disabled="bayctl", env={"BAYCTL_CREATE_BAY": "True"})
    assert code == 0, output
    assert calls == []

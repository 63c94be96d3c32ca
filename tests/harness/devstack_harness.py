"""Run the devstack plugin's phases as stack.sh / clean.sh source them, devstack's helpers stood in.

devstack's own helpers the plugin calls (is_service_enabled, enable_service, trueorfalse,
install_package, setup_develop, echo_summary, die, sudo) are functions defined here that
record their calls (one line per call, fields separated by SEP) in $BSEED_CALLS. `sudo` only
records, unless the harness is asked to run what it is given (the tier test runs as root and
checks what the phase left behind). Used by test_devstack_plugin.py (bayctl stood in too) and
test_devstack_tier.py (the REAL bayctl against the cloud tier).
"""

import os
import textwrap

from harness.paths import REPO as ROOT

PLUGIN_DIR = os.path.join(ROOT, "devstack")
SEP = "\x1f"

# trueorfalse and is_service_enabled follow devstack's functions-common exactly.
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
function define_plugin { _record define_plugin "$@"; }
function plugin_requires { _record plugin_requires "$@"; }
function install_package { _record install_package "$@"; }
function setup_develop { _record setup_develop "$@"; }
function echo_summary { _record echo_summary "$*"; }
function die { _record die "$@"; exit 1; }
function sudo {
    _record sudo "$@"
    if [[ -n "${BSEED_SUDO_RUNS:-}" ]]; then command "$@"; fi
}
"""


def write_harness(directory, mode, *, dest, data_dir, stack_user="stack", enabled="glance,heat",
                  disabled="", sudo_runs=False):
    """A script sourcing settings + plugin.sh for `mode` (e.g. ("stack", "extra")); returns its path.

    BAYCTL_* settings (local.conf's) come from the environment the script runs in."""
    harness = os.path.join(directory, "harness-" + "-".join(mode) + ".sh")
    with open(harness, "w") as handle:
        handle.write(DEVSTACK_STANDINS + textwrap.dedent(f"""
            set -o errexit
            {"BSEED_SUDO_RUNS=1" if sudo_runs else ""}
            DEST={dest}
            DATA_DIR={data_dir}
            STACK_USER={stack_user}
            ENABLED_SERVICES={enabled}
            DISABLED_SERVICES={disabled}
            source {PLUGIN_DIR}/settings
            source {PLUGIN_DIR}/plugin.sh {' '.join(mode)}
            """))
    return harness


def read_calls(path):
    """The recorded calls, each a list: [helper name, argument, ...]."""
    with open(path) as handle:
        return [line.rstrip("\n").split(SEP) for line in handle if line.strip()]


def named(calls, name):
    return [call[1:] for call in calls if call[0] == name]


def flag(argv, name):
    return argv[argv.index(name) + 1]

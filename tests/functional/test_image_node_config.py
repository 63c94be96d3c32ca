"""The built image's one node description, exercised in the image's own tree.

The session's one image (fixtures_image.node_image_raw) is mounted read-only under a
throwaway overlay and entered with chroot inside a network namespace of the test's own
(an eth0 with a private address and a default route, as a cloud node has). There the
REAL configuration scripts run: bayctl's Heat fragment configure-slave.sh (rendered as
Heat's str_replace renders it) and Magnum 10.0.0's own configure-mesos-slave.sh (from the
Magnum virtualenv the cloud tier uses). The stand-in mesos-slave is then started the way
its systemd unit (+ bayctl's drop-in) starts it, and what it RECORDS having been started
with (/var/lib/mesos-standin/mesos-slave.json, fixtures_image.py) is what is asserted:
the master address, network_cni_config_dir, isolators and containerizers a real Mesos
needs to hand out this node's own container addresses through bayctl's CNI plugin.
"""

import configparser
import glob
import json
import os
import shlex
import subprocess

import pytest
from harness.prereq import require, require_tools

pytestmark = [pytest.mark.dib, pytest.mark.root]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAGNUM_SLAVE_SCRIPT = ("lib/python3.8/site-packages/magnum/drivers/mesos_ubuntu_v1/templates/fragments/"
                       "configure-mesos-slave.sh")
NODE_IP, MASTER_IP = "10.0.0.7", "10.0.0.5"

# What `systemctl enable --now UNIT` does on a booted node, for the chroot (where systemctl
# starts nothing): run the unit's ExecStartPre and ExecStart as the test read them from the
# image's unit files; the other units (bayctl's agent needs a kernel datapath) are enabled only.
SYSTEMCTL_SHIM = """#!/bin/bash
set -e
args=()
for arg in "$@"; do [ "$arg" = --now ] || args+=("$arg"); done
/bin/systemctl "${{args[@]}}" >/dev/null 2>&1 || true
[ "$1" = enable ] || [ "$1" = start ] || exit 0
started() {{  # like Type=simple + the fragments' health waits: return once the stand-in recorded
    echo "$1" >> /tmp/bayctl-test-shim/pids
    for _ in $(seq 600); do
        [ -s "/var/lib/mesos-standin/$2.json" ] && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}}
for unit in "$@"; do
    case "$unit" in
{cases}
    esac
done
"""


def unit_commands(tree, unit):
    """(ExecStartPre lines, ExecStart) of `unit` in the image tree, drop-ins applied."""
    files = [f for f in (f"{tree}/lib/systemd/system/{unit}", f"{tree}/etc/systemd/system/{unit}")
             if os.path.isfile(f)] + sorted(glob.glob(f"{tree}/etc/systemd/system/{unit}.d/*.conf"))
    pre, start = [], None
    for path in files:
        parser = configparser.RawConfigParser(strict=False)
        parser.optionxform = str
        parser.read(path)
        if parser.has_option("Service", "ExecStartPre"):
            pre.append(parser.get("Service", "ExecStartPre").lstrip("-"))
        if parser.has_option("Service", "ExecStart"):
            start = parser.get("Service", "ExecStart")
    assert start, f"{unit} has no ExecStart in the image"
    return pre, start


@pytest.fixture
def node_tree(node_image_raw, tmp_path):
    """The image's tree, writable through an overlay, and a way to run commands in it."""
    require_tools("mount", "chroot", "ip")
    lower, upper, work, merged = (tmp_path / d for d in ("lower", "upper", "work", "merged"))
    for d in (lower, upper, work, merged):
        d.mkdir()
    netns = f"bnd-{os.getpid()}"
    mounts = []

    def mount(*args):
        subprocess.run(["mount", *args], check=True)
        mounts.append(args[-1])

    pids = []
    try:
        mount("-o", "loop,ro,noload", node_image_raw, str(lower))
        layers = f"lowerdir={lower},upperdir={upper},workdir={work}"
        mount("-t", "overlay", "overlay", "-o", layers, str(merged))
        mount("-t", "proc", "proc", f"{merged}/proc")
        mount("--bind", "/dev", f"{merged}/dev")
        subprocess.run(["ip", "netns", "add", netns], check=True)
        # eth0 as a cloud node has it (a veth whose peer stays in the namespace: no dummy
        # module on every kernel), with a private address and a default route.
        for cmd in (["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"],
                    ["link", "set", "lo", "up"], ["link", "set", "eth0p", "up"],
                    ["link", "set", "eth0", "up"],
                    ["addr", "add", f"{NODE_IP}/24", "dev", "eth0"],
                    ["route", "add", "default", "via", "10.0.0.1"]):
            subprocess.run(["ip", "-n", netns, *cmd], check=True)
        shim_dir = merged / "tmp" / "bayctl-test-shim"
        shim_dir.mkdir(parents=True)
        cases = []
        for unit in ("mesos-slave.service", "mesos-master.service", "marathon.service"):
            pre, start = unit_commands(str(merged), unit)
            commands = "".join(f"{command}; " for command in pre)
            commands += f"setsid {start} >/var/log/{unit}.log 2>&1 & started $! {unit[:-8]}"
            cases.append(f"        {unit}|{unit[:-8]}) {commands} ;;")
        (shim_dir / "systemctl").write_text(SYSTEMCTL_SHIM.format(cases="\n".join(cases)))
        (shim_dir / "systemctl").chmod(0o755)

        def run(script, env=None):
            exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in (env or {}).items())
            result = subprocess.run(
                ["ip", "netns", "exec", netns, "chroot", str(merged), "/bin/bash", "-c",
                 f"export PATH=/tmp/bayctl-test-shim:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                 f"/sbin:/bin; {exports}{script}"],
                capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, f"{script[:200]}...\n{result.stdout}\n{result.stderr}"
            return result

        def record(name):
            with open(merged / "var" / "lib" / "mesos-standin" / f"{name}.json") as f:
                return json.load(f)

        yield {"tree": merged, "run": run, "record": record, "unit_commands": unit_commands}
    finally:
        pid_file = merged / "tmp" / "bayctl-test-shim" / "pids"
        if pid_file.exists():
            pids = [int(p) for p in pid_file.read_text().split()]
        for pid in pids:  # only the stand-ins this test started
            try:
                os.killpg(pid, 15)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "delete", netns], stderr=subprocess.DEVNULL)
        for target in reversed(mounts):
            subprocess.run(["umount", "-l", target], check=False)


def node_network():
    """The CNI network bayctl-hostgw writes for this node (its own subnet, bayctl-cni)."""
    from bayctl.node import hostgw

    network = hostgw.cni_config(hostgw.container_subnet(NODE_IP, "10.0.0.0/24", "10.100.0.0/16"))
    assert network["type"] == "bayctl-cni" and network["ipam"]["subnet"].startswith("10.100.7.")
    return network


def assert_agent_uses_bayctl_cni(record, master):
    flags = record["flags"]
    assert flags["master"] == f"zk://{master}:2181/mesos"
    assert flags["network_cni_config_dir"] == "/etc/bayctl/cni"
    assert flags["network_cni_plugins_dir"] == "/usr/lib/bayctl/cni"
    assert {"network/cni", "filesystem/linux"} <= set(flags["isolation"].split(","))
    assert "mesos" in flags["containerizers"].split(",")  # the CNI isolator's containerizer
    return flags


def test_heat_fragment_configures_a_slave_from_the_image_description(node_tree):
    fragment_path = os.path.join(ROOT, "bayctl", "share", "heat_templates", "fragments", "configure-slave.sh")
    fragment = open(fragment_path).read()
    params = {"$MESOS_MASTER_PRIVATE": MASTER_IP, "$FIXED_NETWORK_CIDR": "10.0.0.0/24",
              "$CONTAINER_CIDR": "10.100.0.0/16", "$ISOLATION": "", "$EXECUTOR_REGISTRATION_TIMEOUT": "",
              "$WAIT_NOTIFY": "/tmp/bayctl-test-shim/notify"}
    for key, value in params.items():  # Heat's str_replace
        fragment = fragment.replace(key, value)
    notify = node_tree["tree"] / "tmp" / "bayctl-test-shim" / "notify"
    notify.write_text('#!/bin/sh\necho "$@" >> /tmp/bayctl-test-shim/notified\n')
    notify.chmod(0o755)
    (node_tree["tree"] / "tmp" / "user-data.sh").write_text(fragment)
    node_tree["run"]("bash /tmp/user-data.sh")

    notified = (node_tree["tree"] / "tmp" / "bayctl-test-shim" / "notified").read_text()
    assert '"status": "SUCCESS"' in notified
    record = node_tree["record"]("mesos-slave")
    flags = assert_agent_uses_bayctl_cni(record, MASTER_IP)
    assert flags["containerizers"] == "docker,mesos" and flags["ip"] == NODE_IP
    assert record["argv"] == ["/usr/sbin/mesos-slave"]
    # The CNI network the agent reads is this node's own subnet, written by bayctl-hostgw.
    assert json.loads(record["cni_configs"]["10-bayctl.conf"]) == node_network()
    assert (node_tree["tree"] / "etc" / "bayctl" / "role").read_text().split() == ["slave"]


def test_magnum_configured_slave_still_uses_bayctl_cni(node_tree):
    from harness.cloudtier import magnum_venv
    script = os.path.join(os.environ.get("BAYCTL_MAGNUM_VENV", magnum_venv.DEFAULT_VENV), MAGNUM_SLAVE_SCRIPT)
    require(os.path.isfile(script), f"needs Magnum 10.0.0's {script} (tools/setup.d/55-magnum.sh)")
    tree = node_tree["tree"]
    (tree / "etc" / "sysconfig").mkdir(parents=True, exist_ok=True)
    # Magnum's heat-params, as its mesos_ubuntu_v1 slave template writes them (labels set).
    (tree / "etc" / "sysconfig" / "heat-params").write_text(
        f'MESOS_MASTERS_IPS="{MASTER_IP}"\nEXECUTOR_REGISTRATION_TIMEOUT="5mins"\n'
        'ISOLATION="cgroups/cpu,cgroups/mem"\nWORK_DIR=""\nIMAGE_PROVIDERS=""\nEXECUTOR_ENVIRONMENT_VARIABLES=""\n')
    with open(script) as src:
        (tree / "tmp" / "configure-mesos-slave.sh").write_text(src.read())
    # Magnum's script, then bayctl-hostgw as the image runs it at boot, then the agent's start.
    node_tree["run"]("bash /tmp/configure-mesos-slave.sh && /usr/local/bin/bayctl node hostgw "
                     "--container-cidr 10.100.0.0/16 --private-cidr 10.0.0.0/24 -f value && "
                     "systemctl start mesos-slave.service")
    record = node_tree["record"]("mesos-slave")
    flags = assert_agent_uses_bayctl_cni(record, MASTER_IP)
    # Magnum's labels are kept; what CNI needs is added.
    assert flags["isolation"].split(",")[:2] == ["cgroups/cpu", "cgroups/mem"]
    assert json.loads(record["cni_configs"]["10-bayctl.conf"]) == node_network()


def test_master_is_configured_without_services_the_image_lacks(node_tree):
    node_tree["run"](f"bayctl-node-configure master {MASTER_IP} bay1 && "
                     "systemctl enable --now $(bayctl-node-configure services master)")
    services = node_tree["run"]("bayctl-node-configure services master").stdout.split()
    assert "mesos-dns.service" not in services and "mesos-master.service" in services
    record = node_tree["record"]("mesos-master")
    assert record["flags"]["zk"] == f"zk://{MASTER_IP}:2181/mesos"
    assert record["flags"]["ip"] == MASTER_IP and record["flags"]["cluster"] == "bay1"
    assert node_tree["record"]("marathon")["flags"]["master"] == f"zk://{MASTER_IP}:2181/mesos"

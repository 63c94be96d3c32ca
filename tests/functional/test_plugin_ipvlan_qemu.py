"""ipvlan for real: the plugin code on ipvlan slaves inside a Debian kernel booted under qemu.

The host kernel has no ipvlan; one boot of Debian's 6.1 kernel (software emulation, host root
over 9p read-only) runs tests/harness/plugin_qemu_guest.py with this checkout, the real agent and its
eBPF datapath: the CNI plugin's ADD/CHECK/DEL in ipvlan l2 mode, the same in l3 mode on a parent
of its own, then a real dockerd with the Docker driver in ipvlan l2 mode. The guest reports one
line per check; each is asserted here.
"""

import os

import pytest
from harness.prereq import require, require_root, require_tools

pytestmark = [pytest.mark.root, pytest.mark.qemu]

GUEST = os.path.join(os.path.dirname(__file__), "..", "harness", "plugin_qemu_guest.py")
LINK_CHECKS = [
    "ipvlan supported", "auto mode picks ipvlan-l2", "agent up",
    "ADD w1", "w1 has an ipvlan slave", "w1 policy program attached in its namespace",
    "ADD w2", "ADD d1", "d1 has an ipvlan slave", "d1 policy program attached in its namespace",
    "CHECK w1", "CHECK d1", "DEL w1 twice", "DEL d1 twice",
    "no agent endpoints left", "no container slaves left in the node namespace",
    # the Docker driver in ipvlan l2 mode (a real dockerd in the guest moves the slaves itself)
    "docker run dw1", "docker run dd1", "docker: container has an ipvlan l2 slave",
    "docker: policy program attached on the slave inside the container",
    "docker: no agent endpoints left", "docker: no container slaves left",
]
POLICY_CHECKS = [
    "policy applied", "allow web -> db tcp/5432", "deny web -> db icmp", "deny db -> web tcp/80",
    "allow web <-> web (intra-group)", "web reaches its node at the gateway slave",
    "web reaches its node's own address on the parent", "deny db -> node (no db -> external rule)",
    "drops counted",
    "docker: exec finds the image's tools", "docker: deny db -> web",
    "docker: allow web -> db tcp/5432", "docker: web reaches its node",
]
# ipvlan l3 (the CNI plugin's linkMode ipvlan-l3): no ARP, the parent routes by address.
L3_CHECKS = [
    "l3: ADD l3w1", "l3: ADD l3w2", "l3: ADD l3d1", "l3: container has an ipvlan l3 slave",
    "l3: policy program attached in the container's namespace",
    "l3: allow web -> db tcp/5432", "l3: deny web -> db icmp", "l3: deny db -> web tcp/80",
    "l3: allow web <-> web (intra-group)", "l3: web reaches its node at the gateway slave",
    "l3: web reaches its node's own address on the parent", "l3: deny db -> node (no db -> external rule)",
    "l3: DEL every container", "l3: no agent endpoints left", "l3: no container slaves left",
]


@pytest.fixture(scope="module")
def guest_results():
    require_root()
    require_tools("qemu-system-x86_64", "busybox", "apt-get", "dpkg")
    from harness import plugin_qemu
    try:
        plugin_qemu.ensure_kernel()
    except Exception as e:  # no mirror reachable: a missing prerequisite, not a test failure
        require(False, f"Debian 6.1 kernel for the qemu tier unavailable: {e}")
    results, console = plugin_qemu.boot(os.path.abspath(GUEST))
    by_name = {r["check"]: r for r in results}
    assert "done" in by_name, f"guest never finished; console tail:\n{console[-3000:]}"
    failed_script = by_name.get("guest script")
    assert failed_script is None, failed_script["detail"]
    return by_name


def _assert_reported_ok(results, check):
    assert check in results, f"{check!r} not reported: {sorted(results)}"
    assert results[check]["ok"], results[check]["detail"]


@pytest.mark.parametrize("check", LINK_CHECKS)
def test_ipvlan_links_attach_and_cleanup(guest_results, check):
    _assert_reported_ok(guest_results, check)


@pytest.mark.parametrize("check", POLICY_CHECKS)
def test_ipvlan_policy_allows_and_denies(guest_results, check):
    _assert_reported_ok(guest_results, check)


@pytest.mark.parametrize("check", L3_CHECKS)
def test_ipvlan_l3_policy_and_node_reachability(guest_results, check):
    _assert_reported_ok(guest_results, check)

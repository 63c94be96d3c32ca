"""`bayctl verify` at scale (issue 16 item 4), its exactness on a small bay: a policy of many
groups is measured for EVERY ordered group pair and every probed service (no sampling), each
as the policy says; probe helpers start only on the slaves that hold probes, yet every slave's
policy is still checked (a slave without probes that drifted fails the verification).

Timings are bench/verify_scale.py's job; nothing here is timed."""

import os
import subprocess
import sys

import pytest
from harness.fixtures_localbay import leftovers, state_root  # noqa: F401 (fixture)
from harness.prereq import require, require_root, require_tools

from bayctl import api
from bayctl.policy import parse_policy
from bayctl.policy.model import EXTERNAL
from bayctl.providers import local_net, local_nodes
from bayctl.verify.matrix import expected_matrix
from bayctl.verify.run import VerifyError

pytestmark = [pytest.mark.root, pytest.mark.sshd]

BAY = "bbt-vscale"
SLAVES = 5
GROUPS = 6


def ring_policy(groups):
    """Each group reaches the next on its own port; group 0 denies its own members (intraGroup
    is per policy, so a rule lets g01's members talk instead): both verdicts everywhere."""
    lines = ["apiVersion: bayctl/v1", "kind: GroupPolicy", "intraGroup: deny", "groups:"]
    lines += [f"  g{i:02d}: {i + 1}" for i in range(groups)]
    lines += ["rules:"]
    lines += [f"  - {{from: g{i:02d}, to: g{(i + 1) % groups:02d}, ports: [tcp/{8000 + i}]}}"
              for i in range(groups)]
    lines += ["  - {from: g01, to: g01, ports: [udp/5353, icmp]}",
              f"  - {{from: external, to: g{groups - 1:02d}, ports: [tcp/8443]}}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def ring_bay(state_root, tmp_path_factory):  # noqa: F811
    require_root()
    require_tools("ip", "nsenter", "setsid", "ssh-keygen", "sshd", "curl")
    require(os.path.exists(local_nodes.SSHD), f"needs {local_nodes.SSHD} (openssh-server)")
    path = tmp_path_factory.mktemp("policy") / "ring.yaml"
    path.write_text(ring_policy(GROUPS))
    try:
        bay = api.create_bay(BAY, provider="local", slaves=SLAVES, policy=str(path))
        yield bay, parse_policy(path.read_text())
    finally:
        api.delete_bay(BAY)
    assert leftovers(BAY, state_root) == []


def test_every_group_pair_and_service_is_measured_as_the_policy_says(ring_bay):
    bay, policy = ring_bay
    report = bay.verify()
    assert not report.mismatches, [p.describe() for p in report.mismatches]
    wanted = {(p.source, p.target, p.service, p.expected)
              for p in expected_matrix(policy, [*sorted(policy.named_groups), EXTERNAL], intra=True)}
    measured = [(p.source, p.target, p.service, p.observed) for p in report.pairs]
    assert len(measured) == len(set(measured)) == len(wanted)
    assert set(measured) == wanted, "every pair, every service, exactly once, as the policy says"
    # 7 names (6 groups + external): 7 x 7 - 1 ordered pairs; 6 ring ports + 8443, one unnamed
    # TCP port, 5353 + one unnamed UDP port, ICMP.
    assert len(report.pairs) == 48 * 11
    assert {p.observed for p in report.pairs} == {True, False}
    observed = {(p.source, p.target, p.service): p.observed for p in report.pairs}
    assert observed[("g01", "g01", "icmp")] and not observed[("g00", "g00", "icmp")]
    assert observed[("external", "g05", "tcp/8443")] and not observed[("external", "g04", "tcp/8443")]
    # 12 probe endpoints spread over all 5 slaves, removed afterwards.
    assert {where["node"] for name, where in report.placement.items() if name != EXTERNAL} == \
        {f"slave{i}" for i in range(SLAVES)}
    assert not [n for n in local_net.bay_namespaces(BAY) if "-p-" in n]


def test_verify_grid_is_one_row_per_group_pair(ring_bay):
    _, policy = ring_bay
    done = subprocess.run([sys.executable, "-m", "bayctl.cli.main", "-q", "verify", BAY, "--grid"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["from", "->", "to"] and len(lines[0].split()) == 3 + 11
    rows = [line.split() for line in lines[1:] if " -> " in line]
    assert len(rows) == 48 and all(cell in ("pass", "drop") for row in rows for cell in row[3:])
    g00_to_g01 = next(row for row in rows if row[:3] == ["g00", "->", "g01"])
    assert g00_to_g01[3 + lines[0].split()[3:].index("tcp/8000")] == "pass"
    assert "528/528 probes as the policy says" in lines[-1]


def test_a_drifted_slave_without_probes_fails_verification(ring_bay, tmp_path):
    """Two groups on five slaves: probes sit on slave0-2 only, slave4's policy is checked all the same."""
    bay, _ = ring_bay
    two = tmp_path / "two.yaml"
    two.write_text(ring_policy(2))
    bay.apply_policy(str(two))
    report = bay.verify()
    assert not report.mismatches and {where["node"] for where in report.placement.values()} == \
        {"slave0", "slave1", "slave2", "master"}
    other = tmp_path / "other.yaml"
    other.write_text(ring_policy(3))
    files = local_nodes.NodeFiles(BAY, "slave4", bay.state.directory)
    done = subprocess.run([sys.executable, "-m", "bayctl.cli.main", "node", "apply", str(other),
                           "--socket", files.agent_socket], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with pytest.raises(VerifyError) as caught:
        bay.verify()
    assert str(caught.value).startswith("policy drift: slave4 enforces "), str(caught.value)

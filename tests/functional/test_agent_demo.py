"""`bayctl demo` (the README's first command): a local bay, each policy verified with the one
probe engine (`bayctl verify --grid`), the bay deleted; nothing left behind."""

import os

import pytest
from harness.fixtures_agent import EXAMPLES, agent_prerequisites, bayctl
from harness.fixtures_localbay import leftovers, state_root  # noqa: F401 (fixture)

pytestmark = pytest.mark.root

BAY = "bagtdm"


def test_demo_verifies_the_policy_on_a_local_bay_and_deletes_it(state_root):  # noqa: F811
    agent_prerequisites()
    result = bayctl("demo", "--bay", BAY, os.path.join(EXAMPLES, "netgroups.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: every probe as the policies say" in result.stdout
    lines = result.stdout.splitlines()
    header = next(line.split() for line in lines if "from -> to" in line)
    assert header[3:] == ["tcp/40000", "udp/40000", "icmp"], "verify's services, UDP included"
    rows = [line.split() for line in lines if " -> " in line and "from -> to" not in line]
    # netgroups: star-1, star-2 and external; every ordered pair, each group to a second member
    # of itself (not external): 8 rows. Members of one netgroup talk over every protocol, nothing
    # else passes.
    assert len(rows) == 8
    intra = [row for row in rows if row[0] == row[2]]
    assert sorted(row[0] for row in intra) == ["star-1", "star-2"]
    assert all(cell == "pass" for row in intra for cell in row[3:])
    assert all(cell == "drop" for row in rows if row not in intra for cell in row[3:])
    assert "24/24 probes as the policy says" in result.stdout
    assert leftovers(BAY, state_root) == []


def test_demo_refuses_a_bad_policy_before_touching_anything(tmp_path, state_root):  # noqa: F811
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups: {web: 100}\nrulez: []\n")
    result = bayctl("demo", "--bay", BAY, str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "bad.yaml:4" in result.stderr and "rulez" in result.stderr, result.stderr
    assert leftovers(BAY, state_root) == []

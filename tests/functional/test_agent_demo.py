"""`bayctl demo` (the README's first command) runs end to end and leaves nothing behind."""

import os
import subprocess

import pytest
from harness.fixtures_agent import EXAMPLES, agent_prerequisites, bayctl

pytestmark = pytest.mark.root

PREFIX = "bagtdm"


def test_demo_measures_what_the_policy_says_and_cleans_up():
    agent_prerequisites()
    result = bayctl("demo", "--prefix", PREFIX, os.path.join(EXAMPLES, "netgroups.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: every probe as the policies say" in result.stdout
    lines = result.stdout.splitlines()
    rows = [line.split() for line in lines if " -> " in line and "from -> to" not in line]
    # netgroups: 2 + 2 members and an external peer = 20 ordered pairs; members of one netgroup
    # talk over every protocol, nothing else passes.
    assert len(rows) == 20
    intra = [row for row in rows if row[0].split("(")[0] == row[2].split("(")[0]]
    assert len(intra) == 4 and all(cell == "pass" for row in intra for cell in row[3:])
    assert all(cell == "drop" for row in rows if row not in intra for cell in row[3:])
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert PREFIX not in netns
    assert not os.path.exists(f"/sys/fs/bpf/{PREFIX}") and not os.path.exists(f"/run/{PREFIX}")


def test_demo_refuses_a_bad_policy_before_touching_anything(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups: {web: 100}\nrulez: []\n")
    result = bayctl("demo", "--prefix", PREFIX, str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "bad.yaml:4" in result.stderr and "rulez" in result.stderr, result.stderr
    assert not os.path.exists(f"/run/{PREFIX}")

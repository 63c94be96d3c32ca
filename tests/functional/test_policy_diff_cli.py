"""`bayctl policy diff OLD NEW`, run as the installed console script: rows, JSON, exit statuses
(0 nothing changes, 1 something does, 2 bad input in one line), example names and stdin."""

import json
import shutil
import subprocess

from harness.prereq import require_tools

from bayctl.policy import diff, load_policy
from bayctl.share import policy_path

HEADER = "apiVersion: bayctl/v1\nkind: GroupPolicy\n"


def bayctl(*args, stdin=None):
    require_tools("bayctl")
    return subprocess.run([shutil.which("bayctl"), *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_examples_by_name_differ_and_json_lists_each_change():
    result = bayctl("policy", "diff", "web-db", "stars", "-f", "json")
    assert result.returncode == 1, result.stderr
    old, new = load_policy(policy_path("web-db")), load_policy(policy_path("stars"))
    expected = diff.as_rows(diff.diff_policies(old, new), diff.group_namer(old, new))
    rows = json.loads(result.stdout)
    assert [tuple(row.values()) for row in rows] == [tuple(row) for row in expected]
    lost = {"from": "web", "to": "db", "protocol": "tcp", "ports": "5432", "old": "allow", "new": "deny"}
    assert lost in rows


def test_same_verdicts_exit_0_even_when_the_text_differs(tmp_path):
    # Another layout, a rule written twice, tag numbers for names: the same entries.
    same = tmp_path / "same.yaml"
    same.write_text(HEADER + "groups: {db: 200, web: 100}\nrules:\n"
                    "- {from: 100, to: db, ports: [tcp/5432]}\n- {from: web, to: db, ports: [tcp/5432]}\n"
                    "- {from: external, to: web, ports: [tcp/80]}\n")
    result = bayctl("policy", "diff", "web-db", str(same))
    assert (result.returncode, result.stdout.strip()) == (0, ""), result.stderr


def test_stdin_and_a_port_range_split_by_one_port(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text(HEADER + "groups: {web: 1, db: 2}\nintraGroup: deny\nrules:\n"
                   "- {from: web, to: db, ports: [udp/8000-8191]}\n")
    new = HEADER + "groups: {web: 1, db: 2}\nintraGroup: deny\nrules:\n" \
                   "- {from: web, to: db, ports: [udp/8000-8099, udp/8101-8191]}\n"
    result = bayctl("policy", "diff", str(old), "-", "-f", "value", stdin=new)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == ["web db udp 8100 allow deny"]


def test_bad_input_exits_2_with_one_line_naming_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEADER + "groups: {web: 1}\nrules:\n- {from: web, to: nowhere}\n")
    result = bayctl("policy", "diff", "web-db", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:5: rules[0].to" in lines[0], result.stderr
    missing = bayctl("policy", "diff", "web-db", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "missing.yaml: cannot read" in missing.stderr
    one = bayctl("policy", "diff", "web-db")
    assert one.returncode == 2 and "give two policies" in one.stderr

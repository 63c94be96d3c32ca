"""`bayctl policy check|compile`, run as the installed console script in a subprocess."""

import json
import pathlib
import shutil
import subprocess

import pytest
import yaml
from harness.prereq import require_tools

from bayctl.policy import compile_entries, load_policy

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "bayctl" / "share" / "policies"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def bayctl(*args, stdin=None):
    require_tools("bayctl")
    return subprocess.run([shutil.which("bayctl"), *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_check_prints_one_summary_line(path):
    result = bayctl("policy", "check", str(path))
    assert result.returncode == 0, result.stderr
    policy = load_policy(path)
    groups, rules = len(policy.named_groups), len(policy.rules)
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: ok: {groups} group")
    assert f" {rules} rule" in lines[0]
    assert f"{len(compile_entries(policy))} map entries" in lines[0]
    assert lines[0].endswith(f"digest {policy.digest}")
    assert result.stderr == ""


def test_compile_json_lists_every_entry():
    result = bayctl("policy", "compile", str(EXAMPLES / "web-db.yaml"), "-f", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    fields = ("src_group", "dst_group", "proto", "ports", "prefixlen", "rule")
    assert sorted(tuple(row[field] for field in fields) for row in rows) == sorted([
        ("web", "db", "tcp", "5432", 64, "rules[0]"),
        ("external", "web", "tcp", "80", 64, "rules[1]"),
        ("web", "web", "any", "any", 32, "intraGroup"),
        ("db", "db", "any", "any", 32, "intraGroup"),
    ])
    assert {row["rule_id"] for row in rows if row["rule"] == "rules[0]"} == {1}
    pairs = {(row["src_tag"], row["dst_tag"]) for row in rows}
    assert pairs == {(100, 200), (0, 100), (100, 100), (200, 200)}


def test_compile_shows_port_ranges_in_human_form():
    text = ("apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups: {web: 100, db: 200}\nintraGroup: deny\n"
            "rules: [{from: web, to: db, ports: [tcp/8000-8191]}]\n")
    result = bayctl("policy", "compile", "-", "-f", "value", "-c", "ports", "-c", "prefixlen", stdin=text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["8000-8063 58", "8064-8191 57"]


def test_compile_table_and_yaml():
    table = bayctl("policy", "compile", str(EXAMPLES / "stars.yaml"))
    assert table.returncode == 0, table.stderr
    assert "src_group" in table.stdout.splitlines()[1] and "management-ui" in table.stdout
    listed = bayctl("policy", "compile", str(EXAMPLES / "stars.yaml"), "-f", "yaml")
    assert listed.returncode == 0, listed.stderr
    assert len(yaml.safe_load(listed.stdout)) == len(compile_entries(load_policy(EXAMPLES / "stars.yaml")))


def test_stdin_is_read_for_dash():
    text = (EXAMPLES / "netgroups.yaml").read_text()
    result = bayctl("policy", "check", "-", stdin=text)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<stdin>: ok: 2 groups, 0 rules, intraGroup allow, 2 map entries")


@pytest.mark.parametrize("command", ["check", "compile"])
def test_bad_file_is_one_line_on_stderr(tmp_path, command):
    bad = tmp_path / "web.yaml"
    bad.write_text((EXAMPLES / "web-db.yaml").read_text().replace("tcp/5432", "tcp/70000"))
    line = next(number for number, text in enumerate(bad.read_text().splitlines(), 1) if "70000" in text)
    result = bayctl("policy", command, str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"{bad}:{line}: rules[0].ports[0]: bad port 'tcp/70000' (ports are 1-65535)\n"


@pytest.mark.parametrize("content", [b"\xff\xfe\x00\x01binary", b"a: [" * 5000, b"", b"- &a x\n- *a\n"],
                         ids=["binary", "deep", "empty", "alias"])
def test_hostile_files_fail_cleanly(tmp_path, content):
    bad = tmp_path / "hostile.yaml"
    bad.write_bytes(content)
    result = bayctl("policy", "check", str(bad))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith(f"{bad}:")


def test_missing_file_and_bad_stdin():
    missing = bayctl("policy", "check", "/nonexistent/policy.yaml")
    assert missing.returncode == 1
    assert missing.stderr == "/nonexistent/policy.yaml: cannot read: No such file or directory\n"
    garbage = bayctl("policy", "compile", "-", stdin="kind: GroupPolicy\n")
    assert garbage.returncode == 1
    assert garbage.stderr == "<stdin>:1: apiVersion: missing\n"


def bayctl_in(cwd, *args):
    require_tools("bayctl")
    return subprocess.run([shutil.which("bayctl"), *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_examples_lists_every_shipped_policy_with_groups_and_a_description():
    result = bayctl("policy", "examples", "-f", "json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {path.stem for path in EXAMPLE_FILES}
    for path in EXAMPLE_FILES:
        policy = load_policy(path)
        assert rows[path.stem]["groups"] == ", ".join(policy.named_groups)
        assert rows[path.stem]["description"] and "\n" not in rows[path.stem]["description"]


def test_a_shipped_name_works_from_any_directory_and_a_file_of_that_name_wins(tmp_path):
    by_name = bayctl_in(tmp_path, "policy", "check", "stars")
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout.startswith(f"{EXAMPLES / 'stars.yaml'}: ok:")
    (tmp_path / "stars").write_text((EXAMPLES / "web-db.yaml").read_text())
    by_file = bayctl_in(tmp_path, "policy", "compile", "stars", "-f", "json")
    assert by_file.returncode == 0, by_file.stderr
    assert len(json.loads(by_file.stdout)) == len(compile_entries(load_policy(EXAMPLES / "web-db.yaml")))
    unknown = bayctl_in(tmp_path, "policy", "check", "no-such-example")
    assert unknown.returncode == 1 and len(unknown.stderr.splitlines()) == 1
    assert "bayctl policy examples" in unknown.stderr


@pytest.mark.parametrize("command", [("policy", "check"), ("policy", "compile"), ("policy", "apply"),
                                     ("create", "mesosbay"), ("demo",)])
def test_help_says_a_file_of_that_name_wins(command):
    result = bayctl(*command, "--help")
    assert result.returncode == 0
    assert "a file of that name wins" in " ".join(result.stdout.split())

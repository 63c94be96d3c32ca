"""The policy parser: every example loads; every bad input names its file, line and field."""

import pathlib
import textwrap

import pytest

from bayctl.errors import PolicyError
from bayctl.policy import PortSpec, Rule, load_policy, parse_policy
from bayctl.policy.parser import MAX_DEPTH, MAX_NODES, MAX_POLICY_BYTES

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "bayctl" / "share" / "policies"

HEADER = """\
apiVersion: bayctl/v1
kind: GroupPolicy
groups:
  web: 100
  db: 200
"""  # lines 1-5; test documents append from line 6


def write(tmp_path, text, name="web.yaml"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else textwrap.dedent(text).encode())
    return path


def error_of(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    return path, caught.value


def fails(tmp_path, text, line, field, reason):
    """Loading `text` fails with exactly this line, field and reason, in one printable line."""
    path, err = error_of(tmp_path, text)
    assert (err.path, err.line, err.field) == (str(path), line, field)
    assert reason in err.reason, err.reason
    prefix = f"{path}:{line}: " + (f"{field}: " if field else "")
    assert str(err) == prefix + err.reason
    assert "\n" not in str(err)


# --- the examples ------------------------------------------------------------------------

def test_every_example_loads():
    names = {path.name for path in EXAMPLES.glob("*.yaml")}
    assert names >= {"gist-numeric.yaml", "netgroups.yaml", "stars.yaml", "web-db.yaml"}
    for path in EXAMPLES.glob("*.yaml"):
        policy = load_policy(path)
        assert policy.source == str(path)
        assert policy.groups["external"] == 0
        assert len(policy.digest) == 64


def test_web_db_example_means_what_design_says():
    policy = load_policy(EXAMPLES / "web-db.yaml")
    assert policy.groups == {"external": 0, "web": 100, "db": 200}
    assert policy.intra_group == "allow"
    assert policy.rules == (
        Rule(("web",), ("db",), (PortSpec("tcp", 5432, 5432),)),
        Rule(("external",), ("web",), (PortSpec("tcp", 80, 80),)),
    )


def test_gist_numeric_references_resolve_to_names():
    policy = load_policy(EXAMPLES / "gist-numeric.yaml")
    pairs = [(rule.sources, rule.destinations) for rule in policy.rules]
    assert pairs == [
        (("tag100",), ("external",)),
        (("external",), ("tag100",)),
        (("tag100",), ("tag100",)),
        (("tag100",), ("tag200",)),
        (("tag200",), ("tag100",)),
    ]
    assert policy.intra_group == "deny"


def test_stars_anyone_rule_uses_star():
    policy = load_policy(EXAMPLES / "stars.yaml")
    assert policy.rules[3].sources == ("*",)
    assert policy.rules[0].destinations == ("backend", "client", "frontend")
    assert policy.rules[3].line == 22


def test_netgroups_has_no_rules():
    policy = load_policy(EXAMPLES / "netgroups.yaml")
    assert policy.rules == () and policy.named_groups == {"star-1": 1, "star-2": 2}


def test_layout_and_references_do_not_change_meaning():
    block = parse_policy(HEADER + "rules:\n  - from: web\n    to: [db, web]\n    ports: [tcp/80, udp]\n")
    flow = parse_policy(
        "{kind: GroupPolicy, apiVersion: bayctl/v1, groups: {db: 200, web: 100}, intraGroup: allow,\n"
        " rules: [{to: [100, db, 200], from: 100, ports: [UDP, tcp/80-80, tcp/80]}]}\n"
    )
    assert block == flow
    assert block.digest == flow.digest


def test_intra_group_and_rules_default():
    policy = parse_policy(HEADER)
    assert policy.intra_group == "allow" and policy.rules == ()
    assert parse_policy(HEADER + "intraGroup: deny\nrules:\n").intra_group == "deny"


def test_port_forms():
    rule = "- {from: web, to: db, ports: [tcp, udp/53, tcp/8000-8191, icmp]}\n"
    policy = parse_policy(HEADER + "rules:\n" + rule)
    assert policy.rules[0].ports == (
        PortSpec("icmp"), PortSpec("tcp"), PortSpec("tcp", 8000, 8191), PortSpec("udp", 53, 53),
    )


def test_parse_policy_names_its_source():
    with pytest.raises(PolicyError) as caught:
        parse_policy("kind: GroupPolicy\n", source="<stdin>")
    assert str(caught.value) == "<stdin>:1: apiVersion: missing"


# --- each class of bad input ---------------------------------------------------------------

def test_not_yaml(tmp_path):
    fails(tmp_path, HEADER + "rules: [from: web\n", 7, None, "not valid YAML")


def test_unquoted_star_gets_a_hint(tmp_path):
    fails(tmp_path, HEADER + "rules:\n  - from: *\n    to: db\n", 7, None, 'quote it: "*"')


def test_not_a_mapping(tmp_path):
    fails(tmp_path, "- apiVersion: bayctl/v1\n", 1, None, "expected a policy")
    fails(tmp_path, "just words\n", 1, None, "got a string")


def test_empty_file(tmp_path):
    fails(tmp_path, "", 1, None, "empty policy")
    fails(tmp_path, "# only a comment\n\n", 1, None, "empty policy")


def test_wrong_api_version_and_kind(tmp_path):
    fails(tmp_path, HEADER.replace("bayctl/v1", "bayctl/v2"), 1, "apiVersion",
                 "unsupported apiVersion 'bayctl/v2' (expected bayctl/v1)")
    fails(tmp_path, HEADER.replace("GroupPolicy", "NetworkPolicy"), 2, "kind",
                 "unsupported kind 'NetworkPolicy'")
    fails(tmp_path, HEADER.replace("apiVersion: bayctl/v1\n", ""), 1, "apiVersion", "missing")


def test_unknown_keys_anywhere(tmp_path):
    fails(tmp_path, HEADER + "metadata: {}\n", 6, "metadata", "unknown key 'metadata'")
    fails(tmp_path, HEADER + "rules:\n  - from: web\n    to: db\n    action: deny\n", 9,
                 "rules[0].action", "unknown key 'action'")
    fails(tmp_path, HEADER + "rules:\n  - from: web\n    to: db\n  - {from: db, to: web, port: [tcp]}\n",
                 9, "rules[1].port", "unknown key 'port'")


def test_duplicate_keys(tmp_path):
    fails(tmp_path, HEADER + "kind: GroupPolicy\n", 6, "kind", "duplicate key (first at line 2)")


def test_wrong_types(tmp_path):
    fails(tmp_path, HEADER + "rules: {from: web}\n", 6, "rules", "expected a list of rules, got a mapping")
    fails(tmp_path, HEADER + "rules:\n  - web\n", 7, "rules[0]", "expected a mapping, got a string")
    fails(tmp_path, HEADER + "rules: [{from: web, to: db, ports: tcp/80}]\n", 6, "rules[0].ports",
                 "expected a list of ports")
    fails(tmp_path, HEADER + "rules: [{from: web, to: db, ports: [80]}]\n", 6, "rules[0].ports[0]",
                 "expected a port spec like tcp/80, got an integer")
    fails(tmp_path, HEADER + "rules: [{from: {web: 1}, to: db}]\n", 6, "rules[0].from",
                 "got a mapping")
    fails(tmp_path, HEADER + "intraGroup: true\n", 6, "intraGroup", "expected allow or deny, got a boolean")
    fails(tmp_path, HEADER + "intraGroup: sometimes\n", 6, "intraGroup", "got 'sometimes'")
    fails(tmp_path, "apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups: [web]\n", 3, "groups",
                 "expected a mapping of group name to tag, got a list")
    fails(tmp_path, HEADER.replace("100", '"100"'), 4, "groups.web", "expected group tag, got a string")
    fails(tmp_path, HEADER.replace("100", "1.5"), 4, "groups.web", "got a number")
    fails(tmp_path, HEADER.replace("100", "0x64"), 4, "groups.web", "write it in decimal")
    fails(tmp_path, HEADER + "rules: !!set {a}\n", 6, "rules", "got a value tagged tag:yaml.org,2002:set")


def test_unknown_group_in_rule(tmp_path):
    fails(tmp_path, HEADER + "rules:\n  - from: web\n    to: dbb\n", 8, "rules[0].to",
                 "unknown group 'dbb' (groups: db, web, external")
    fails(tmp_path, HEADER + "rules:\n  - from: [web, cache]\n    to: db\n", 7, "rules[0].from[1]",
                 "unknown group 'cache'")
    fails(tmp_path, HEADER + "rules:\n  - {from: 300, to: db}\n", 7, "rules[0].from",
                 "unknown group tag 300")
    fails(tmp_path, HEADER + "rules:\n  - {from: [web, '*'], to: db}\n", 7, "rules[0].from[1]",
                 '"*" already means every group')
    fails(tmp_path, HEADER + "rules:\n  - {from: [], to: db}\n", 7, "rules[0].from", "empty list")
    fails(tmp_path, HEADER + "rules:\n  - {from: web}\n", 7, "rules[0].to", "missing")


def test_duplicate_group_name_or_tag(tmp_path):
    fails(tmp_path, HEADER + "  web: 300\n", 6, "groups.web", "duplicate group name (first at line 4)")
    fails(tmp_path, HEADER + "  cache: 100\n", 6, "groups.cache",
                 "duplicate tag 100 (already group 'web' at line 4)")


def test_tag_out_of_range_or_reserved(tmp_path):
    fails(tmp_path, HEADER + "  cache: 65536\n", 6, "groups.cache", "tag 65536 out of range (use 1-65535)")
    fails(tmp_path, HEADER + "  cache: 0\n", 6, "groups.cache", "tag 0 is reserved for external")
    fails(tmp_path, HEADER + "  cache: -3\n", 6, "groups.cache", "bad group tag '-3'")
    fails(tmp_path, HEADER + "  external: 7\n", 6, "groups.external", "'external' is reserved")
    fails(tmp_path, HEADER + "  9lives: 7\n", 6, "groups.'9lives'", "bad group name (a letter, then")
    fails(tmp_path, HEADER + "  7: 7\n", 6, "groups", "group names must start with a letter, got an integer")
    fails(tmp_path, HEADER + "  'my web': 7\n", 6, "groups.'my web'", "bad group name")


def test_bad_proto(tmp_path):
    fails(tmp_path, HEADER + "rules:\n  - from: web\n    to: db\n    ports: [tcp/80, sctp/80]\n", 9,
                 "rules[0].ports[1]", "bad protocol 'sctp' in 'sctp/80' (expected tcp, udp or icmp)")
    fails(tmp_path, HEADER + "rules:\n  - {from: web, to: db, ports: [icmp/8]}\n", 7,
                 "rules[0].ports[0]", "icmp has no ports")


def test_bad_port_is_the_documented_message(tmp_path):
    text = HEADER + "rules:\n  - from: external\n    to: web\n  - from: web\n    to: db\n    ports:\n" \
                    "      - tcp/70000\n"
    path, err = error_of(tmp_path, text)
    assert str(err) == f"{path}:12: rules[1].ports[0]: bad port 'tcp/70000' (ports are 1-65535)"
    fails(tmp_path, HEADER + "rules: [{from: web, to: db, ports: [tcp/0]}]\n", 6, "rules[0].ports[0]",
                 "bad port 'tcp/0'")
    fails(tmp_path, HEADER + "rules: [{from: web, to: db, ports: [tcp:80]}]\n", 6, "rules[0].ports[0]",
                 "bad port spec 'tcp:80'")
    fails(tmp_path, HEADER + "rules: [{from: web, to: db, ports: []}]\n", 6, "rules[0].ports",
                 "empty list")


def test_bad_range(tmp_path):
    fails(tmp_path, HEADER + "rules: [{from: web, to: db, ports: [udp/90-80]}]\n", 6, "rules[0].ports[0]",
                 "bad port range 'udp/90-80' (low end 90 above high end 80)")
    fails(tmp_path, HEADER + "rules: [{from: web, to: db, ports: [udp/1-65536]}]\n", 6,
                 "rules[0].ports[0]", "bad port 'udp/1-65536'")


# --- hostile input: still one PolicyError, never another exception -------------------------

def test_binary_garbage(tmp_path):
    fails(tmp_path, b"apiVersion: bayctl/v1\n\xff\xfe\x00garbage", 2, None, "not UTF-8 text")
    fails(tmp_path, b"apiVersion: bayctl/v1\nkind: \x00GroupPolicy\n", 2, None, "NUL")
    fails(tmp_path, b"apiVersion: bayctl/v1\nkind: \x07\n", 2, None, "characters are not allowed")


def test_lone_surrogates_in_text():
    with pytest.raises(PolicyError) as caught:
        parse_policy("apiVersion: bayctl/v1\nkind: \ud800\n", source="<stdin>")
    assert str(caught.value) == "<stdin>:2: not valid Unicode text"


def test_huge_ints(tmp_path):
    digits = "9" * 100_000
    fails(tmp_path, HEADER + f"  cache: {digits}\n", 6, "groups.cache", "bad group tag '9999")
    fails(tmp_path, HEADER + f"rules: [{{from: web, to: db, ports: [tcp/{digits}]}}]\n", 6,
                 "rules[0].ports[0]", "ports are 1-65535")
    fails(tmp_path, HEADER + f"rules: [{{from: {digits}, to: db}}]\n", 6, "rules[0].from", "bad group tag")


def test_deep_nesting(tmp_path):
    fails(tmp_path, "a: " + "[" * 100_000 + "]" * 100_000 + "\n", 1, None,
                 f"nested more than {MAX_DEPTH} levels deep")


def test_alias_bomb(tmp_path):
    bomb = 'a: &a ["lol", "lol", "lol"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(9)
    )
    fails(tmp_path, bomb, 2, None, "YAML aliases (*name) are not allowed")


def test_too_large(tmp_path):
    path, err = error_of(tmp_path, b"#" * (MAX_POLICY_BYTES + 1))
    assert err.path == str(path) and "file too large" in err.reason


def test_too_many_values(tmp_path):
    fails(tmp_path, "- a\n" * (MAX_NODES + 10), MAX_NODES, None, f"more than {MAX_NODES} YAML values")


def test_more_than_one_document(tmp_path):
    fails(tmp_path, HEADER + "---\n" + HEADER, 6, None, "one YAML document")


def test_unreadable_file(tmp_path):
    with pytest.raises(PolicyError) as caught:
        load_policy(tmp_path / "missing.yaml")
    assert str(caught.value) == f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory"
    with pytest.raises(PolicyError, match="cannot read: Is a directory"):
        load_policy(tmp_path)

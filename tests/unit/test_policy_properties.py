"""Properties of the policy language over random input (hypothesis).

- A valid policy survives dump -> parse unchanged (model, digest, compiled entries), and
  however it is laid out (flow or block, names or tag numbers) it means the same.
- Anything invalid (a valid policy broken on purpose, random YAML, random text or bytes)
  gives a PolicyError naming the source, never another exception.
"""

import pathlib

import yaml
from harness.policy_strategies import policies
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bayctl.errors import PolicyError
from bayctl.policy import compile_entries, dump_policy, load_policy, parse_policy

SOURCE = "random.yaml"
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_or_policy_error(data):
    """Parse; a failure must be a one-line PolicyError naming the source. None on failure."""
    try:
        return parse_policy(data, source=SOURCE)
    except PolicyError as err:
        assert err.path == SOURCE
        assert str(err).startswith(SOURCE) and "\n" not in str(err)
        assert err.line is None or err.line >= 1
        return None


# --- round trips -------------------------------------------------------------------------

@FAST
@given(policies())
def test_dump_parse_round_trip(policy):
    text = dump_policy(policy)
    again = parse_policy(text, source=SOURCE)
    assert again == policy
    assert again.digest == policy.digest
    assert compile_entries(again) == compile_entries(policy)
    assert dump_policy(again) == text


@st.composite
def renderings(draw):
    """A policy and one of many YAML texts that say it: flow or block, names or tags, any key order."""
    policy = draw(policies())

    def member(name):
        return policy.groups[name] if name != "*" and draw(st.booleans()) else name

    def members(names):
        if names == ("*",):
            return "*"       # the language spells "every group" only this way
        listed = [member(name) for name in names]
        if len(listed) == 1 and draw(st.booleans()):
            return listed[0]
        return draw(st.permutations(listed + listed[: draw(st.integers(0, len(listed)))]))

    def port(spec):
        text = str(spec)
        if spec.lo is not None and spec.lo == spec.hi and draw(st.booleans()):
            text = f"{spec.proto}/{spec.lo}-{spec.hi}"
        return text.upper() if draw(st.booleans()) else text

    rules = []
    for rule in policy.rules:
        item = {"from": members(rule.sources), "to": members(rule.destinations)}
        if rule.ports:
            item["ports"] = draw(st.permutations([port(spec) for spec in rule.ports]))
        rules.append(dict(draw(st.permutations(list(item.items())))))
    document = {"apiVersion": "bayctl/v1", "kind": "GroupPolicy", "groups": policy.named_groups}
    if policy.intra_group == "deny" or draw(st.booleans()):
        document["intraGroup"] = policy.intra_group
    if rules or draw(st.booleans()):
        document["rules"] = rules
    document = dict(draw(st.permutations(list(document.items()))))
    text = yaml.safe_dump(document, default_flow_style=draw(st.sampled_from([None, True, False])),
                          sort_keys=False)
    return policy, "# a comment\n" + text


@FAST
@given(renderings())
def test_layout_never_changes_meaning(case):
    policy, text = case
    parsed = parse_policy(text, source=SOURCE)
    assert parsed == policy
    assert parsed.digest == policy.digest


# --- invalid input -----------------------------------------------------------------------

def _lines(text):
    return text.splitlines(keepends=True)


@st.composite
def broken_policies(draw):
    """(text, line) for a valid policy broken on purpose at a known line."""
    policy = draw(policies(max_groups=4, max_rules=4))
    lines = _lines(dump_policy(policy))
    group_lines = [i for i, line in enumerate(lines) if line.startswith("  ") and not line.startswith("  - ")
                   and not line.startswith("    ")]
    rule_lines = [i for i, line in enumerate(lines) if line.startswith("  - from: ")]
    kinds = ["unknown top key", "bad api", "rule unknown key", "bad tag", "zero tag", "duplicate tag",
             "unknown group", "bad port", "bad range", "bad proto", "icmp port", "rule not mapping"]
    kind = draw(st.sampled_from(kinds))
    if kind == "unknown top key":
        at = draw(st.sampled_from([0, 1, 2]))
        lines.insert(at, "owner: me\n")
    elif kind == "bad api":
        at = 0
        lines[0] = "apiVersion: " + draw(st.sampled_from(["bayctl/v2", "v1", "'1'", "[]"])) + "\n"
    elif kind in ("rule unknown key", "unknown group", "bad port", "bad range", "bad proto", "icmp port"):
        assume(rule_lines)
        at = draw(st.sampled_from(rule_lines))
        extra = {
            "rule unknown key": "action: deny",
            "unknown group": "from: nosuchgroup",
            "bad port": "ports: [tcp/" + draw(st.sampled_from(["0", "65536", "99999999999999999999"])) + "]",
            "bad range": "ports: [udp/200-100]",
            "bad proto": "ports: [sctp/80]",
            "icmp port": "ports: [icmp/8]",
        }[kind]
        # Replace the rule's first line: `- from: X` becomes `- <broken>` and `from` moves down.
        original = lines[at][len("  - "):]
        lines[at] = "  - " + extra + "\n"
        if not extra.startswith("from:"):
            lines.insert(at + 1, "    " + original)
        if extra.startswith("ports:"):
            # Drop any ports line the rule already had, so the broken one is the only one.
            end = at + 2
            while end < len(lines) and lines[end].startswith("    "):
                if lines[end].startswith("    ports:"):
                    del lines[end]
                    break
                end += 1
    elif kind in ("bad tag", "zero tag", "duplicate tag"):
        # A duplicate is reported where it repeats, so it must come after the first group.
        candidates = group_lines[1:] if kind == "duplicate tag" else group_lines
        assume(candidates)
        at = draw(st.sampled_from(candidates))
        name = lines[at].split(":")[0]
        if kind == "duplicate tag":
            first_tag = lines[group_lines[0]].rsplit(":", 1)[1].strip()
            lines[at] = f"{name}: {first_tag}\n"
        else:
            lines[at] = f"{name}: " + ("0" if kind == "zero tag" else draw(st.sampled_from(
                ["65536", "-1", "0x10", "1.0", "abc", "[1]", "99999999999999999999999"]))) + "\n"
    else:  # rule not mapping
        assume(rule_lines)
        at = draw(st.sampled_from(rule_lines))
        lines[at] = "  - just-a-string\n"
        while at + 1 < len(lines) and lines[at + 1].startswith("    "):
            del lines[at + 1]
    return "".join(lines), at + 1, kind


@FAST
@given(broken_policies())
def test_broken_policies_name_the_line(case):
    text, line, kind = case
    try:
        parse_policy(text, source=SOURCE)
    except PolicyError as err:
        assert err.path == SOURCE
        assert err.line == line, (kind, str(err), text)
    else:
        raise AssertionError(f"{kind}: accepted\n{text}")


@FAST
@given(policies(max_groups=4, max_rules=4), st.data())
def test_random_byte_mutations_never_escape(policy, data):
    raw = bytearray(dump_policy(policy).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        operation = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        byte = data.draw(st.sampled_from(list(b"-:*&![]{}'\"#\n\t 0a\x00\xff|>%@`,?")) | st.integers(0, 255))
        if operation == "delete":
            del raw[at]
        elif operation == "insert":
            raw.insert(at, byte)
        else:
            raw[at] = byte
    parse_or_policy_error(bytes(raw))


yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**30), st.floats(allow_nan=False),
    st.text(max_size=20), st.sampled_from(["bayctl/v1", "GroupPolicy", "web", "tcp/80", "*", "allow"]),
)
yaml_keys = st.one_of(st.sampled_from(["apiVersion", "kind", "groups", "intraGroup", "rules", "from", "to",
                                       "ports", "web"]), st.text(max_size=8))
yaml_documents = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(yaml_keys, children, max_size=5)),
    max_leaves=25,
)


@FAST
@given(yaml_documents)
def test_random_yaml_is_refused_cleanly(document):
    text = yaml.safe_dump(document)
    result = parse_or_policy_error(text)
    if not (isinstance(document, dict) and document.get("apiVersion") == "bayctl/v1"):
        assert result is None


@FAST
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400),
                 st.text(st.characters(categories=["Cs", "Cc", "Zl", "Zp", "Lu"]), max_size=50)))
def test_random_bytes_and_text_are_refused_cleanly(data):
    assert parse_or_policy_error(data) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["[", "{", "- ", "a: ", "&x ", "*x ", "!!str ", "? ", "\n  ", "]", "}"]),
                max_size=200))
def test_random_yaml_structure_tokens_are_refused_cleanly(tokens):
    assert parse_or_policy_error("".join(tokens)) is None


def test_examples_round_trip():
    examples = pathlib.Path(__file__).resolve().parents[2] / "bayctl" / "share" / "policies"
    for path in examples.glob("*.yaml"):
        policy = load_policy(path)
        again = parse_policy(dump_policy(policy), source=str(path))
        assert again == policy and again.digest == policy.digest
        assert compile_entries(again) == compile_entries(policy)

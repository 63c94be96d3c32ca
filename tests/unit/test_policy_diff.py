"""`bayctl policy diff` rows against the policies' own verdicts (hypothesis over random pairs).

For every packet worth asking (each tag of either policy and one of neither, TCP/UDP at and next
to every range boundary, ICMP and other protocols), exactly one change row covers it when the
two policies decide it differently (with the right old and new verdicts) and none when they
agree. The kernel's own lookups are checked in tests/functional/test_policy_diff_kernel.py.
"""

from harness.diff_points import covering, points
from harness.policy_strategies import policies
from hypothesis import HealthCheck, given, settings

from bayctl.policy import diff, load_policy, parse_policy
from bayctl.policy.diff import ALLOW, DENY, PORTED
from bayctl.share import policy_path

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def policy(body):
    return parse_policy("apiVersion: bayctl/v1\nkind: GroupPolicy\n" + body)


def verdict(policy, src, dst, proto, port):
    return ALLOW if policy.allows(src, dst, proto, port if proto in PORTED else 0) else DENY


@FAST
@given(policies(), policies())
def test_changes_cover_exactly_the_packets_whose_verdict_differs(old, new):
    changes = diff.diff_policies(old, new)
    for src, dst, proto, port in points(old, new):
        was, now = verdict(old, src, dst, proto, port), verdict(new, src, dst, proto, port)
        rows = covering(changes, src, dst, proto, port)
        if was == now:
            assert rows == [], (src, dst, proto, port)
        else:
            assert [(row.old, row.new) for row in rows] == [(was, now)], (src, dst, proto, port, rows)


@FAST
@given(policies())
def test_a_policy_against_itself_changes_nothing(policy):
    assert diff.diff_policies(policy, policy) == []


def test_ranges_are_merged_for_reading():
    old = policy("groups: {web: 1, db: 2}\nintraGroup: deny\nrules:\n"
                       "- {from: web, to: db, ports: [tcp/8000-8099, tcp/8100-8191, udp/53]}\n")
    new = policy("groups: {web: 1, db: 2}\nintraGroup: deny\nrules:\n"
                       "- {from: web, to: db, ports: [tcp/8050, udp/53]}\n")
    rows = diff.as_rows(diff.diff_policies(old, new), diff.group_namer(old, new))
    assert rows == [("web", "db", "tcp", "8000-8049", "allow", "deny"),
                    ("web", "db", "tcp", "8051-8191", "allow", "deny")]


def test_a_pair_that_loses_everything_is_one_row():
    old = policy("groups: {web: 1, db: 2}\nintraGroup: deny\nrules:\n- {from: web, to: db}\n")
    new = policy("groups: {web: 1, db: 2}\nintraGroup: deny\nrules: []\n")
    rows = diff.as_rows(diff.diff_policies(old, new), diff.group_namer(old, new))
    assert rows == [("web", "db", "any", "any", "allow", "deny")]


def test_narrowing_any_protocol_to_one_port_names_what_is_lost():
    old = policy("groups: {web: 1, db: 2}\nintraGroup: deny\nrules:\n- {from: web, to: db}\n")
    new = policy("groups: {web: 1, db: 2}\nintraGroup: deny\nrules:\n"
                       "- {from: web, to: db, ports: [tcp/5432]}\n")
    rows = diff.as_rows(diff.diff_policies(old, new), diff.group_namer(old, new))
    assert rows == [("web", "db", "tcp", "0-5431", "allow", "deny"),
                    ("web", "db", "tcp", "5433-65535", "allow", "deny"),
                    ("web", "db", "any but tcp", "any", "allow", "deny")]


def test_shipped_examples_by_name():
    old, new = load_policy(policy_path("web-db")), load_policy(policy_path("stars"))
    document = diff.as_document(old, new, diff.diff_policies(old, new), diff.group_namer(old, new))
    assert document["old"] == old.digest and document["new"] == new.digest
    lost = [c for c in document["changes"] if c["from"] == "web" and c["to"] == "db"]
    assert lost == [{"from": "web", "from_tag": old.groups["web"], "to": "db", "to_tag": old.groups["db"],
                     "protocol": "tcp", "proto": 6, "except_protos": [], "ports": "5432",
                     "port_range": [5432, 5432], "old": "allow", "new": "deny"}]

"""The expected connectivity matrix verification compares against, from the policy model."""

import os

from bayctl.policy import load_policy, parse_policy
from bayctl.verify.matrix import expected_matrix, listening_ports, probed_services
from bayctl.verify.report import Report

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "bayctl", "share", "policies")


def expected(probes, source, target, service):
    return next(p.expected for p in probes if (p.source, p.target, p.service) == (source, target, service))


def test_web_db_matrix_is_the_policys():
    policy = load_policy(os.path.join(EXAMPLES, "web-db.yaml"))
    # UDP on one unnamed port although no rule names UDP: default deny is shown for it too.
    assert probed_services(policy) == [("tcp", 80), ("tcp", 5432), ("tcp", 40000), ("udp", 40000),
                                       ("icmp", None)]
    probes = expected_matrix(policy)
    # web reaches db on 5432 only; db reaches nothing; the outside reaches web on 80 only.
    assert expected(probes, "web", "db", "tcp/5432")
    assert not expected(probes, "web", "db", "tcp/80")
    assert not expected(probes, "db", "web", "tcp/5432")
    assert expected(probes, "external", "web", "tcp/80")
    assert not expected(probes, "external", "db", "tcp/5432")
    assert not any(expected(probes, s, t, "tcp/40000") for s, t in [("web", "db"), ("external", "web")])
    assert not any(p.expected for p in probes if p.proto in ("icmp", "udp"))
    # 3 groups (external included) -> 6 ordered pairs x 5 services; never a group to itself.
    assert len(probes) == 30
    assert all(p.source != p.target for p in probes)


def test_unmentioned_port_avoids_every_range_and_udp_is_probed_when_named():
    policy = parse_policy("""
apiVersion: bayctl/v1
kind: GroupPolicy
groups: {a: 1, b: 2}
rules:
  - {from: a, to: b, ports: [tcp/39990-40010, udp/53, icmp]}
""")
    services = probed_services(policy)
    assert ("tcp", 40011) in services and ("tcp", 39990) in services and ("tcp", 40010) in services
    assert ("udp", 53) in services and ("udp", 40000) in services
    probes = expected_matrix(policy)
    assert expected(probes, "a", "b", "icmp") and not expected(probes, "b", "a", "icmp")
    assert listening_ports(probes) == {"tcp": [39990, 40010, 40011], "udp": [53, 40000]}


def test_report_json_has_pairs_and_mismatches():
    policy = load_policy(os.path.join(EXAMPLES, "web-db.yaml"))
    probes = expected_matrix(policy)
    for probe in probes:
        probe.observed = probe.expected
    probes[0].observed = not probes[0].expected
    report = Report("demo", policy.digest, ["db", "web", "external"], {}, probes)
    doc = report.to_json()
    assert set(doc) >= {"pairs", "mismatches"}
    assert set(doc["pairs"][0]) >= {"from", "to", "proto", "port", "expected", "observed"}
    assert doc["mismatches"] == [probes[0].to_json()]
    assert not report.ok


def test_grid_shows_one_row_per_pair_and_marks_disagreements():
    policy = load_policy(os.path.join(EXAMPLES, "web-db.yaml"))
    probes = expected_matrix(policy)
    for probe in probes:
        probe.observed = probe.expected
    wrong = next(p for p in probes if (p.source, p.target, p.service) == ("db", "web", "udp/40000"))
    wrong.observed = True
    report = Report("demo", policy.digest, ["db", "web", "external"], {}, probes)
    lines = report.grid().splitlines()
    assert lines[0].split() == ["from", "->", "to", "tcp/80", "tcp/5432", "tcp/40000", "udp/40000", "icmp"]
    rows = {tuple(line.split()[:3]): line.split()[3:] for line in lines[1:] if " -> " in line}
    assert len(rows) == 6
    assert rows[("web", "->", "db")] == ["drop", "pass", "drop", "drop", "drop"]
    assert rows[("external", "->", "web")] == ["pass", "drop", "drop", "drop", "drop"]
    assert rows[("db", "->", "web")] == ["drop", "drop", "drop", "PASS!", "drop"]
    assert "29/30 probes as the policy says" in lines[-1]

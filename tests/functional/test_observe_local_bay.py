"""`bayctl observe --bay` over a real local bay: the flows every slave's agent reports for
`bayctl verify`'s probes, merged over SSH, with group names; following ends cleanly on Ctrl-C,
and a slave whose stream drops is named and re-joined.

One bay (2 slaves, web-db). Verify's probes are the traffic: every denied ICMP/UDP probe must
appear exactly once as a denied flow with the probe's groups and reason `policy` (a denied TCP
probe retransmits its SYN: at least once), every allowed probe as an allowed new flow once on
each node it crosses (both slaves see a new flow when it goes between them), and no reply of an
allowed TCP probe ever.
"""

import json
import os
import select
import signal
import subprocess
import sys

import pytest
from harness.interrupt import popen_interruptible
from harness.prereq import require, require_root, require_tools

from bayctl import api
from bayctl.providers import local_net, local_nodes

pytestmark = [pytest.mark.root, pytest.mark.sshd]

BAY = "bbt-observe"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB_DB = os.path.join(ROOT, "bayctl", "share", "policies", "web-db.yaml")


def require_local_bay():
    require_root()
    require_tools("ip", "nsenter", "setsid", "ssh-keygen", "sshd", "pgrep")
    require(os.path.exists(local_nodes.SSHD), f"needs {local_nodes.SSHD} (openssh-server)")


@pytest.fixture(scope="module")
def bay(state_root):
    require_local_bay()
    bay = api.create_bay(BAY, provider="local", slaves=2, policy=WEB_DB)
    yield bay
    api.delete_bay(BAY)


@pytest.fixture(scope="module")
def verified(bay):
    report = bay.verify()
    assert report.ok, report.mismatches
    return report


def _cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "bayctl.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


def _history(*filters):
    done = _cli("observe", "--bay", BAY, "--no-follow", "--since", "30m", "-f", "json", *filters)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _matching(flows, probe, verdict):
    return [f for f in flows if (f["src_ip"], f["dst_ip"], f["proto"], f["verdict"]) ==
            (probe.source_ip, probe.target_ip, probe.proto, verdict)
            and (probe.proto == "icmp" or f["dst_port"] == probe.port)]


def test_every_probe_of_verify_appears_with_groups_and_reason(verified):
    flows = _history()
    slaves = {node.name for node in api.get_bay(BAY).nodes if node.role == "slave"}
    assert {f["node"] for f in flows} == slaves
    wrong = []
    for probe in verified.pairs:
        verdict = "allowed" if probe.expected else "denied"
        seen = _matching(flows, probe, verdict)
        # Denied: dropped at the sender's hook, reported once (a TCP SYN is retransmitted).
        # Allowed: a new flow to every node it crosses (sender's and receiver's), once each.
        if probe.expected:
            wrong_count = not seen or len(seen) != len({f["node"] for f in seen})
        else:
            wrong_count = not seen if probe.proto == "tcp" else len(seen) != 1
        if wrong_count:
            wrong.append(f"{probe.source}->{probe.target} {probe.proto}/{probe.port} {verdict}: {len(seen)}")
            continue
        for flow in seen:
            if (flow["from"], flow["to"]) != (probe.source, probe.target) or \
                    flow.get("reason") != (None if probe.expected else "policy"):
                wrong.append(f"{probe}: reported as {flow['from']}->{flow['to']} {flow.get('reason')}")
        if probe.expected and probe.proto == "tcp":
            replies = [f for f in flows if (f["src_ip"], f["dst_ip"], f["src_port"]) ==
                       (probe.target_ip, probe.source_ip, probe.port)]
            if replies:
                wrong.append(f"{probe}: its replies reported: {replies}")
    assert wrong == []


def test_filters_apply_across_the_bay(verified):
    denied = _history("--verdict", "denied", "--from", "web")
    assert denied and {(f["verdict"], f["from"]) for f in denied} == {("denied", "web")}


def test_follow_merges_slaves_names_a_dropout_and_ends_on_ctrl_c(bay, verified):
    argv = [sys.executable, "-m", "bayctl.cli.main", "observe", "--bay", BAY, "-f", "json"]
    follow = popen_interruptible(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    slaves = sorted(node.name for node in api.get_bay(BAY).nodes if node.role == "slave")
    try:
        bay.verify()                               # traffic on every slave while we follow
        seen = set()
        for _ in range(400):
            if seen >= set(slaves) or not select.select([follow.stdout], [], [], 1.0)[0]:
                break
            seen.add(json.loads(follow.stdout.readline())["node"])
        assert seen == set(slaves)
        # one slave's helper dies (as when its SSH session or agent goes): named, re-joined
        victim = slaves[0]
        helpers = subprocess.run(["pgrep", "-f", "bayctl.observe.node"], capture_output=True, text=True)
        inside = local_net.processes_in(local_net.netns_path(BAY, victim))
        pids = [int(pid) for pid in helpers.stdout.split() if int(pid) in inside]
        assert pids, f"no observe helper runs on {victim}"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        notes = ""
        for _ in range(60):
            if "re-joined" in notes or not select.select([follow.stderr], [], [], 1.0)[0]:
                break
            notes += follow.stderr.readline()
        assert f"{victim}: dropped out" in notes and f"{victim}: re-joined" in notes, notes
        follow.send_signal(signal.SIGINT)
        _, err = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0 and "Traceback" not in err, err


def test_verify_html_draws_observed_flows_per_pair_denied_in_red(verified, tmp_path):
    import html.parser

    page = tmp_path / "stars.html"
    done = _cli("verify", BAY, "--html", str(page), "--flows", "30m", "-f", "json", timeout=300)
    assert done.returncode == 0, done.stderr
    flows = _history()
    expected = {}
    for flow in flows:
        if flow["verdict"] in ("allowed", "denied"):
            key = (flow["from"], flow["to"], flow["verdict"])
            expected[key] = expected.get(key, 0) + 1

    class Paths(html.parser.HTMLParser):
        drawn = {}

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            classes = (attrs.get("class") or "").split()
            if tag == "path" and "flow" in classes:
                verdict = "denied" if "denied" in classes else "allowed"
                self.drawn[(attrs["data-from"], attrs["data-to"], verdict)] = int(attrs["data-count"])

    parser = Paths()
    parser.feed(page.read_text())
    groups = set(verified.groups)
    # The page's counts were taken just before this history: the history can only have grown.
    assert parser.drawn and set(parser.drawn) <= set(expected)
    assert all(parser.drawn[key] <= expected[key] for key in parser.drawn)
    assert {key for key in expected if key[0] in groups and key[1] in groups} == set(parser.drawn)
    assert any(key[2] == "denied" for key in parser.drawn)
    assert ".flow.denied { stroke: #d32f2f; }" in page.read_text()

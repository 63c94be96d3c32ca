"""The local bay end to end, on the real machine: namespaces, sshd, agents, eBPF, SSH seeding.

One bay (2 slaves, web-db) serves the module: it is verified, re-seeded live with the stars
policy, re-created (resume, nothing doubled), and finally deleted (nothing left). A second,
small bay is interrupted with Ctrl-C half-way and resumed.
"""

import html.parser as html_parser
import json
import os
import signal
import struct
import subprocess
import sys
import zlib

import pytest
from harness.fixtures_localbay import leftovers
from harness.interrupt import popen_interruptible
from harness.prereq import require, require_root, require_tools

from bayctl import api
from bayctl.create.context import Status
from bayctl.node.client import AgentClient
from bayctl.policy import load_policy
from bayctl.providers import local_net, local_nodes

pytestmark = [pytest.mark.root, pytest.mark.sshd]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB_DB = os.path.join(ROOT, "bayctl", "share", "policies", "web-db.yaml")
STARS = os.path.join(ROOT, "bayctl", "share", "policies", "stars.yaml")
GIST = os.path.join(ROOT, "bayctl", "share", "policies", "gist-numeric.yaml")
BAY = "bbt-webdb"


def require_local_bay():
    require_root()
    require_tools("ip", "nsenter", "setsid", "ssh-keygen", "sshd")
    require(os.path.exists(local_nodes.SSHD), f"needs {local_nodes.SSHD} (openssh-server)")


@pytest.fixture(scope="module")
def web_db_bay(state_root):
    require_local_bay()
    lines = []
    bay = api.create_bay(BAY, provider="local", slaves=2, policy=WEB_DB, status=Status(lines.append))
    bay.progress = lines
    yield bay
    api.delete_bay(BAY)  # idempotent: the last test deletes it already and checks


@pytest.fixture(scope="module")
def web_db_report(web_db_bay):
    return web_db_bay.verify()


def bay_processes(bay_name):
    pids = []
    for name in local_net.bay_namespaces(bay_name):
        pids += local_net.processes_in(os.path.join(local_net.NETNS_DIR, name))
    return sorted(pids)


def test_create_builds_master_and_slaves_and_seeds_every_agent(web_db_bay, state_root):
    bay = api.get_bay(BAY)
    assert bay.status == "READY"
    assert [n.name for n in bay.nodes] == ["master", "slave0", "slave1"]
    assert bay.master.public_ip and all(s.public_ip is None for s in bay.slaves)  # reached via the master
    for node in ["master", "slave0", "slave1"]:
        assert os.path.exists(local_net.netns_path(BAY, node))
    digest = load_policy(WEB_DB).digest
    assert bay.state.policy_digest == digest
    for slave in bay.slaves:
        # Ask each slave's agent directly on its socket: the SSH seeding really reached it.
        files = local_nodes.NodeFiles(BAY, slave.name, bay.state.directory)
        assert AgentClient(files.agent_socket).show_policy()["digest"] == digest
    steps = bay.state.steps
    assert steps["ensure-image"] == "skipped" and steps["seed-policy"] == "done"
    assert any("Seeding the group policy" in line for line in web_db_bay.progress)


def test_verify_web_db_shows_zero_mismatches(web_db_report):
    report = web_db_report
    assert report.pairs and not report.mismatches, [p.describe() for p in report.mismatches]
    assert all(p.observed is not None for p in report.pairs)

    def observed(source, target, service):
        return next(p.observed for p in report.pairs if (p.source, p.target, p.service) ==
                    (source, target, service))

    # The seeds' scenario: web reaches db on 5432; db cannot reach web; the outside reaches web on 80.
    assert observed("web", "db", "tcp/5432")
    assert not observed("db", "web", "tcp/5432")
    assert not observed("web", "db", "tcp/40000")
    assert observed("external", "web", "tcp/80")
    assert not observed("external", "db", "tcp/5432")
    # Members of one group talk (intraGroup: allow), between two slaves.
    assert observed("web", "web", "tcp/40000") and observed("db", "db", "icmp")
    assert report.placement["web"]["node"] != report.placement["web.peer"]["node"]
    # Probes were spread over both slaves, and removed afterwards.
    assert {where["node"] for group, where in report.placement.items() if group != "external"} == \
        {"slave0", "slave1"}
    assert not [n for n in local_net.bay_namespaces(BAY) if "-p-" in n]


@pytest.mark.chromium
def test_html_report_rendered_in_headless_chromium_shows_groups_and_edges(web_db_report, tmp_path):
    require_tools("chromium")
    from bayctl.verify.html import render

    page = tmp_path / "report.html"
    page.write_text(render(web_db_report))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=180)
    assert dom.returncode == 0, dom.stderr[-500:]
    drawn = _DrawnPage()
    drawn.feed(dom.stdout)
    assert drawn.groups == {"db", "web", "external"}
    # Edges as measured: web -> db and external -> web get through, nothing else does.
    assert drawn.edges[("web", "db")] == {"edge", "allowed"}
    assert drawn.edges[("external", "web")] == {"edge", "allowed"}
    assert drawn.edges[("db", "web")] == {"edge", "blocked"}
    assert drawn.edges[("external", "db")] == {"edge", "blocked"}
    assert len(drawn.edges) == 6 and not any("mismatch" in css for css in drawn.edges.values())
    # 8 ordered pairs (intra included) x 5 services: tcp/80, tcp/5432, tcp/40000, udp/40000 (no rule
    # names UDP, one unnamed UDP port is probed all the same), icmp.
    assert "40 probes, all as the policy says." in drawn.text
    # Within each group (intraGroup: allow), drawn on the group itself.
    assert drawn.intra == {"db": "allowed", "web": "allowed", "external": "unmeasured"}

    shot = tmp_path / "report.png"
    subprocess.run(["chromium", *flags, "--window-size=700,900", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=180, check=True)
    pixels = _png_pixels(shot.read_bytes())
    # What a person sees: the green of allowed edges, and no red of a mismatch.
    assert _count(pixels, (0x2E, 0x9E, 0x44)) > 200
    assert _count(pixels, (0xD3, 0x2F, 0x2F)) == 0


class _DrawnPage(html_parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.groups, self.edges, self.text, self.intra = set(), {}, "", {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        css = set((attrs.get("class") or "").split())
        if tag == "g" and "group" in css:
            self.groups.add(attrs["data-group"])
            self.intra[attrs["data-group"]] = attrs["data-intra"]
        if tag == "path" and "edge" in css:
            self.edges[(attrs["data-from"], attrs["data-to"])] = css

    def handle_data(self, data):
        self.text += data


def _png_pixels(data):
    """RGB(A) 8-bit pixels of a non-interlaced PNG (what Chromium writes), decoded with zlib."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, previous = zlib.decompress(idat), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return [tuple(row[x:x + 3]) for row in rows for x in range(0, stride, channels)]


def _count(pixels, rgb, tolerance=12):
    return sum(1 for pixel in pixels if all(abs(a - b) <= tolerance for a, b in zip(pixel, rgb)))


def test_verify_cli_json_is_pairs_and_mismatches(web_db_bay):
    done = subprocess.run([sys.executable, "-m", "bayctl.cli.main", "-q", "verify", BAY, "-f", "json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["mismatches"] == []
    assert {"from", "to", "proto", "port", "expected", "observed"} <= set(doc["pairs"][0])
    assert {(p["from"], p["to"], p["proto"], p["port"], p["observed"]) for p in doc["pairs"]} >= {
        ("web", "db", "tcp", 5432, "allow"), ("db", "web", "tcp", 5432, "deny")}


def test_list_and_show_follow_openstack_client_conventions(web_db_bay):
    listed = subprocess.run([sys.executable, "-m", "bayctl.cli.main", "list", "-f", "json"],
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [row["name"] for row in rows] == [BAY] and rows[0]["status"] == "READY"
    shown = subprocess.run([sys.executable, "-m", "bayctl.cli.main", "show", BAY, "-f", "value", "-c",
                            "provider", "-c", "policy_digest"], capture_output=True, text=True, timeout=120)
    assert shown.stdout.split() == ["local", load_policy(WEB_DB).digest]


def test_apply_stars_live_then_verify_again(web_db_bay):
    results = web_db_bay.apply_policy(STARS)
    assert sorted((r.node, r.status) for r in results) == [("slave0", "seeded"), ("slave1", "seeded")]
    report = web_db_bay.verify()
    assert not report.mismatches, [p.describe() for p in report.mismatches]
    assert report.groups == ["backend", "client", "frontend", "management-ui", "external"]

    def observed(source, target, service):
        return next(p.observed for p in report.pairs if (p.source, p.target, p.service) ==
                    (source, target, service))

    assert observed("management-ui", "client", "tcp/9000")
    assert observed("client", "frontend", "tcp/9001")
    assert observed("frontend", "backend", "tcp/9001")
    assert not observed("client", "backend", "tcp/9001")
    assert observed("external", "management-ui", "tcp/9001")
    assert not observed("backend", "frontend", "tcp/9001")
    # Seeding the same policy again rewrites nothing.
    again = web_db_bay.apply_policy(STARS)
    assert {r.status for r in again} == {"unchanged"}
    # The gist's numeric policy: intraGroup deny, {100 100} allowed by a rule, {200 200} not.
    web_db_bay.apply_policy(GIST)
    report = web_db_bay.verify()
    assert not report.mismatches, [p.describe() for p in report.mismatches]
    assert observed_in(report, "tag100", "tag100", "icmp")
    assert not observed_in(report, "tag200", "tag200", "tcp/40000")
    # Back to web-db for the tests that follow.
    web_db_bay.apply_policy(WEB_DB)


def observed_in(report, source, target, service):
    return next(p.observed for p in report.pairs
                if (p.source, p.target, p.service) == (source, target, service))


def test_create_again_resumes_without_duplicates(web_db_bay):
    namespaces = local_net.bay_namespaces(BAY)
    pids = bay_processes(BAY)
    assert len(pids) == 6  # 3 sshd + 2 agents + the master's ZooKeeper
    bay = api.create_bay(BAY, provider="local", slaves=2, policy=WEB_DB)
    assert bay.status == "READY"
    assert local_net.bay_namespaces(BAY) == namespaces
    assert bay_processes(BAY) == pids
    assert {entry["status"] for entry in bay.state.last_seed} == {"unchanged"}


def test_create_again_with_other_slave_count_is_refused_before_touching_anything(web_db_bay):
    from bayctl.errors import SpecError

    pids = bay_processes(BAY)
    with pytest.raises(SpecError, match="exists with slaves 2"):
        api.create_bay(BAY, provider="local", slaves=3, policy=WEB_DB)
    assert bay_processes(BAY) == pids


@pytest.fixture
def removed_afterwards():
    """Bay names a test makes; whatever the test's outcome, they are deleted at its end."""
    names = []
    yield names
    for name in names:
        api.delete_bay(name)


def test_ctrl_c_during_create_leaves_a_bay_create_resumes_and_delete_removes(state_root, removed_afterwards):
    require_local_bay()
    name = "bbt-intr"
    removed_afterwards.append(name)
    argv = [sys.executable, "-m", "bayctl.cli.main", "create", "mesosbay", name, "--provider", "local",
            "--slaves", "1", "--policy", WEB_DB]
    process = popen_interruptible(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Interrupt once the nodes exist (the wait step has started): a half-made bay.
    for line in process.stderr:
        if "Waiting for the nodes" in line:
            process.send_signal(signal.SIGINT)
            break
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in err
    # The last line names both ways on: resume, or remove.
    assert err.strip().splitlines()[-1] == (
        f"bayctl: interrupted: bay {name} is half made: `bayctl create mesosbay {name}` resumes it, "
        f"`bayctl delete bay {name}` removes it")
    state = api.get_bay(name).state
    assert state.status == "FAILED" and state.reason == "interrupted"
    assert local_net.bay_namespaces(name)  # nothing was removed by the interrupt

    bay = api.create_bay(name, provider="local", slaves=1, policy=WEB_DB)
    assert bay.status == "READY" and bay.state.policy_digest == load_policy(WEB_DB).digest
    assert len(bay_processes(name)) == 4  # + the master's ZooKeeper

    assert api.delete_bay(name)
    assert leftovers(name, state_root) == []


def test_unreadable_key_is_refused_before_anything_is_made(state_root, tmp_path, removed_afterwards):
    require_local_bay()
    from bayctl.errors import SpecError

    bad_key = tmp_path / "not-a-key"
    removed_afterwards.append("bbt-badkey")
    bad_key.write_text("this is not a private key\n")
    with pytest.raises(SpecError, match="cannot read private key"):
        api.create_bay("bbt-badkey", provider="local", slaves=1, policy=WEB_DB, ssh_key=str(bad_key))
    assert leftovers("bbt-badkey", state_root) == []


def test_failed_create_is_removed_and_says_what_failed(state_root, removed_afterwards):
    require_local_bay()
    from bayctl.create.pipeline import CreateFailed

    name = "bbt-fail"
    removed_afterwards.append(name)
    with pytest.raises(CreateFailed) as caught:
        # A login user the nodes do not have: the nodes come up, the agents cannot be reached.
        api.create_bay(name, provider="local", slaves=1, policy=WEB_DB, ssh_user="nobody-here")
    message = str(caught.value)
    assert message.startswith("step wait-for-agents failed: slave0: ")
    assert "refused the bay's key" in message
    assert "nothing of bay bbt-fail is left" in message
    assert leftovers(name, state_root) == []


def test_retain_keeps_a_failed_bay_for_debugging(state_root, removed_afterwards):
    require_local_bay()
    from bayctl.create.pipeline import CreateFailed

    name = "bbt-keep"
    removed_afterwards.append(name)
    with pytest.raises(CreateFailed) as caught:
        api.create_bay(name, provider="local", slaves=1, policy=WEB_DB, retain=True, ssh_user="nobody-here")
    assert "kept for debugging" in str(caught.value)
    assert f"bayctl delete bay {name}" in str(caught.value)
    state = api.get_bay(name).state
    assert state.status == "FAILED" and state.failed_step == "wait-for-agents"
    assert len(bay_processes(name)) == 4  # master sshd + ZooKeeper, slave sshd, slave agent: all kept
    assert api.delete_bay(name)
    assert leftovers(name, state_root) == []


def test_leftovers_of_an_unrecorded_bay_are_refused_then_delete_removes_them(state_root, removed_afterwards):
    require_local_bay()
    from bayctl.errors import CloudError

    name = "bbt-orphan"
    removed_afterwards.append(name)
    subprocess.run(["ip", "netns", "add", local_net.netns_name(name, "master")], check=True)
    with pytest.raises(CloudError, match="no record of it"):
        api.create_bay(name, provider="local", slaves=1, policy=WEB_DB)
    assert api.delete_bay(name)
    assert leftovers(name, state_root) == []


def test_delete_leaves_nothing_behind(web_db_bay, state_root):
    assert bay_processes(BAY)
    done = subprocess.run([sys.executable, "-m", "bayctl.cli.main", "delete", "bay", BAY],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"bay {BAY} deleted"
    assert leftovers(BAY, state_root) == []
    again = subprocess.run([sys.executable, "-m", "bayctl.cli.main", "delete", "bay", BAY],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "no bay" in again.stderr

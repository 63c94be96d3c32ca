"""The agent's API, CLI and lifecycle against a real agent process (root: it loads the datapath).

Socket: root-only, one agent per socket, stale sockets replaced, never a non-socket file.
CLI: one-line errors and exit 1 for bad input or a missing agent. State: the policy and
endpoints come back after a restart and after a "reboot" (pins gone); SIGTERM leaves the pins.
"""

import concurrent.futures
import json
import os
import socket
import stat
import subprocess

import pytest
from harness.fixtures_agent import EXAMPLES, bayctl, cleanup_agent, new_agent

pytestmark = pytest.mark.root

WEB_DB = os.path.join(EXAMPLES, "web-db.yaml")


def one_line_error(result, *fragments):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def raw_request(socket_path, request):
    """Send raw bytes over the unix socket; return (status, body as JSON)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(socket_path)
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int([line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")][0])
        while len(body) < length:
            body += sock.recv(65536)
    return int(head.split()[1]), json.loads(body)


def test_socket_is_root_only(bare_agent):
    assert stat.S_IMODE(os.stat(bare_agent.socket_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(bare_agent.socket_path)).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(bare_agent.socket_path).st_mode)


def test_second_agent_on_the_same_socket_is_refused(bare_agent):
    other_pins = bare_agent.pin_dir + "x"
    from bayctl.node.agent_process import AgentProcess

    second = AgentProcess(bare_agent.socket_path, other_pins, bare_agent.state_dir + "x")
    # Run to its exit (it must refuse): the helper's own argv, not a hand-written one.
    result = subprocess.run(second.command(), capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 1
    assert f"another agent is already running at {bare_agent.socket_path}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(other_pins), "a refused agent must not touch the datapath"
    via_cli = bayctl("node", "agent", "--pin-dir", other_pins, "--state-dir", bare_agent.state_dir + "x",
                     socket=bare_agent.socket_path)
    one_line_error(via_cli, f"another agent is already running at {bare_agent.socket_path}")
    assert bare_agent.client.health()["ok"] is True


def test_stale_socket_is_replaced_and_other_files_are_not():
    agent = new_agent()
    try:
        os.makedirs(os.path.dirname(agent.socket_path), mode=0o700)
        with open(agent.socket_path, "w") as handle:
            handle.write("not a socket\n")
        with pytest.raises(Exception, match="exists and is not a socket"):
            agent.start()
        assert open(agent.socket_path).read() == "not a socket\n"
        os.unlink(agent.socket_path)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(agent.socket_path)        # bound, never listening, closed: what a crash leaves
        stale.close()
        assert os.path.exists(agent.socket_path)
        agent.start()
        assert agent.client.health()["ok"] is True
    finally:
        cleanup_agent(agent)


def test_sigterm_exits_cleanly_leaving_pins_and_state(bare_agent):
    from bayctl.node.datapath import Datapath

    applied = bayctl("node", "apply", WEB_DB, "-f", "json", socket=bare_agent.socket_path)
    assert applied.returncode == 0, applied.stderr
    digest = json.loads(applied.stdout)["digest"]
    added = bayctl("node", "endpoint", "add", "10.251.9.1", "db", socket=bare_agent.socket_path)
    assert added.returncode == 0, added.stderr
    assert bare_agent.stop() == 0
    assert not os.path.exists(bare_agent.socket_path)
    assert "agent stopped (SIGTERM)" in bare_agent.log()
    datapath = Datapath(bare_agent.pin_dir)
    assert datapath.policy_loaded(), "SIGTERM must leave the policy enforced"
    assert datapath.endpoints() == {"10.251.9.1": 200}

    bare_agent.start()
    assert bare_agent.client.show_policy()["digest"] == digest
    assert [ep["ip"] for ep in bare_agent.client.endpoints()] == ["10.251.9.1"]


def test_state_reapplied_after_reboot_when_pins_are_gone(bare_agent):
    from bayctl.node.datapath import Datapath

    with open(WEB_DB) as handle:
        digest = bare_agent.client.apply_policy(handle.read())["digest"]
    bare_agent.client.add_endpoint("10.251.9.2", "web")
    bare_agent.client.add_endpoint("10.251.9.3", 200)
    bare_agent.stop()
    Datapath(bare_agent.pin_dir).unpin()          # what a reboot does to bpffs
    bare_agent.start()
    assert bare_agent.client.health()["digest"] == digest
    datapath = Datapath(bare_agent.pin_dir)
    assert datapath.policy_loaded()
    assert datapath.endpoints() == {"10.251.9.2": 100, "10.251.9.3": 200}


def test_no_saved_policy_means_fail_closed_after_restart(bare_agent):
    from bayctl.node.datapath import Datapath

    with open(WEB_DB) as handle:
        bare_agent.client.apply_policy(handle.read())
    assert bayctl("node", "clear", socket=bare_agent.socket_path).returncode == 0
    bare_agent.stop()
    bare_agent.start()
    assert bare_agent.client.show_policy() == {"digest": None, "groups": {}, "source": None}
    assert not Datapath(bare_agent.pin_dir).policy_loaded()


def test_cli_round_trip(bare_agent):
    sock = bare_agent.socket_path
    with open(WEB_DB) as handle:
        text = handle.read()
    applied = bayctl("node", "apply", "-", "-f", "value", socket=sock, input=text)
    assert applied.returncode == 0, applied.stderr
    from bayctl.policy import parse_policy

    assert applied.stdout.split()[0] == parse_policy(text).digest
    shown = json.loads(bayctl("node", "show", "-f", "json", socket=sock).stdout)
    assert shown["digest"] == parse_policy(text).digest
    assert shown["groups"] == {"db": 200, "external": 0, "web": 100}
    assert bayctl("node", "endpoint", "add", "10.251.9.4", "web", socket=sock).returncode == 0
    assert bayctl("node", "endpoint", "add", "10.251.9.5", "200", socket=sock).returncode == 0
    listed = json.loads(bayctl("node", "endpoints", "-f", "json", socket=sock).stdout)
    assert [(ep["ip"], ep["group"], ep["tag"]) for ep in listed] == [
        ("10.251.9.4", "web", 100), ("10.251.9.5", "db", 200)]
    removed = bayctl("node", "endpoint", "remove", "10.251.9.4", socket=sock)
    assert removed.returncode == 0 and "removed" in removed.stdout
    again = bayctl("node", "endpoint", "remove", "10.251.9.4", socket=sock)
    assert again.returncode == 0 and "was not registered" in again.stdout
    drops = json.loads(bayctl("policy", "drops", "-f", "json", socket=sock).stdout)
    assert {row["reason"] for row in drops} >= {"POLICY", "NO_POLICY"}


def test_cli_errors_are_one_line(bare_agent, tmp_path):
    sock = bare_agent.socket_path
    with open(WEB_DB) as handle:
        bare_agent.client.apply_policy(handle.read())
    bad = tmp_path / "ports.yaml"
    bad.write_text("apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups: {web: 100}\n"
                   "rules:\n  - from: web\n    to: web\n    ports: [tcp/99999]\n")
    cases = [
        (("node", "endpoint", "add", "10.251.9.x", "web"), ["bad IP '10.251.9.x'"]),
        (("node", "endpoint", "add", "10.251.9.6", "nosuch"), ["unknown group 'nosuch'", "db, web"]),
        (("node", "endpoint", "add", "10.251.9.6", "0"), ["reserved"]),
        (("node", "endpoint", "add", "10.251.9.6", "web", "--ifname", "eth0", "--netns", "/run/netns/bagt0"),
         ["does not exist"]),
        (("node", "endpoint", "remove", "nonsense"), ["bad IP"]),
        (("node", "apply", str(tmp_path / "missing.yaml")), ["missing.yaml"]),
        (("node", "apply", str(bad)), ["ports.yaml:", "99999"]),
    ]
    # Independent CLI runs side by side: each is a full `bayctl` start-up.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda case: bayctl(*case[0], socket=sock), cases))
    for (_, fragments), result in zip(cases, results):
        one_line_error(result, *fragments)
    one_line_error(bayctl("node", "show", socket="/run/bagt-nosuch/agent.sock"),
                   "agent not running at /run/bagt-nosuch/agent.sock")
    assert bare_agent.client.endpoints() == [], "failed requests registered nothing"


def test_http_errors(bare_agent):
    sock = bare_agent.socket_path
    status, body = raw_request(sock, b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, body) == (404, {"error": "no such resource: /v1/nothing"})
    status, body = raw_request(sock, b"PUT /v1/stats HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    assert status == 405 and "GET" in body["error"]
    status, body = raw_request(sock, b"POST /v1/endpoints HTTP/1.1\r\nContent-Length: 5\r\n\r\n{nope")
    assert status == 400 and "not JSON" in body["error"]
    status, body = raw_request(sock, b"PUT /v1/policy HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 411
    request = b'{"ip": "10.251.9.7", "group": 7, "color": "red"}'
    status, body = raw_request(sock, b"POST /v1/endpoints HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                               % (len(request), request))
    assert status == 400 and "color" in body["error"]
    request = b'{"ip": "10.251.9.7", "group": 7}'
    status, body = raw_request(sock, b"POST /v1/endpoints HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                               % (len(request), request))
    assert status == 201
    assert body == {"ip": "10.251.9.7", "group": None, "tag": 7, "ifname": None, "netns": None}


def test_log_has_one_line_per_mutation_and_never_the_policy(bare_agent):
    marker = "bagt-secret-comment-7f3a"
    with open(WEB_DB) as handle:
        text = handle.read() + f"# {marker}\n"
    bare_agent.client.apply_policy(text, source="marked.yaml")
    bare_agent.client.add_endpoint("10.251.9.8", "web")
    bare_agent.client.remove_endpoint("10.251.9.8")
    bare_agent.client.stats()
    log = bare_agent.log()
    assert marker not in log
    mutations = [line for line in log.splitlines()
                 if "policy applied" in line or "endpoint added" in line or "endpoint removed" in line]
    assert len(mutations) == 3, log
    assert "source=marked.yaml" in mutations[0]


def test_concurrent_registrations_are_all_kept(bare_agent):
    wanted = {f"10.251.10.{n}": 300 + n for n in range(1, 41)}
    # More clients at once than socketserver's default listen backlog (5).
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        added = list(pool.map(lambda item: bare_agent.client.add_endpoint(*item), wanted.items()))
    assert sorted(ep["ip"] for ep in added) == sorted(wanted)
    bare_agent.stop()
    bare_agent.start()
    assert {ep["ip"]: ep["tag"] for ep in bare_agent.client.endpoints()} == wanted

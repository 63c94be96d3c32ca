"""The agent's HTTP layer at the byte level, against a real agent over its real unix socket.

What a careless or hostile client can send: cut-off bodies, bodies that hide a second
request, requests http.server itself cannot parse, a client that hangs up. Every answer is
JSON `{"error": "one line"}`, nothing half-received is ever applied or saved, and the log
gets one line, never a traceback.
"""

import json
import os
import socket

import pytest
from harness.fixtures_agent import EXAMPLES, cleanup_agent, new_agent
from harness.rawhttp import exchange, json_error

pytestmark = pytest.mark.root

STARS = os.path.join(EXAMPLES, "stars.yaml")
WEB_DB = os.path.join(EXAMPLES, "web-db.yaml")


def state_files(state_dir):
    """name -> content of every file in the state dir (what a restart would read)."""
    found = {}
    for name in sorted(os.listdir(state_dir)):
        with open(os.path.join(state_dir, name), "rb") as handle:
            found[name] = handle.read()
    return found


def put_policy(text):
    data = text.encode()
    return b"PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data)


@pytest.fixture
def agent_with_web_db(bare_agent):
    with open(WEB_DB) as handle:
        bare_agent.digest = bare_agent.client.apply_policy(handle.read())["digest"]
    return bare_agent


# -- 1. bodies shorter than they say --------------------------------------------------------


def test_cut_off_upload_is_refused_and_changes_nothing(agent_with_web_db):
    agent = agent_with_web_db
    with open(STARS, "rb") as handle:
        stars = handle.read()
    before = state_files(agent.state_dir)
    # The case: the whole file's length announced, its first 525 bytes sent, then EOF.
    request = b"PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(stars)
    answers = exchange(agent.socket_path, request + stars[:525])
    assert len(answers) == 1 and answers[0][0] == 400, answers
    message = json_error(answers[0])
    assert "525" in message and str(len(stars)) in message, message
    assert agent.client.health()["digest"] == agent.digest, "a cut-off policy must not be enforced"
    assert state_files(agent.state_dir) == before, "a cut-off policy must not be saved"


@pytest.mark.parametrize("length", [b"-5", b"12abc", b"+7", b" 0x10", b"1_0"])
def test_content_length_that_is_not_a_number_is_400(agent_with_web_db, length):
    agent = agent_with_web_db
    answers = exchange(agent.socket_path,
                       b"PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\nabc" % length)
    assert len(answers) == 1 and answers[0][0] == 400, answers
    assert "Content-Length" in json_error(answers[0])
    assert agent.client.health()["digest"] == agent.digest


def test_two_different_content_lengths_are_refused(agent_with_web_db):
    agent = agent_with_web_db
    answers = exchange(agent.socket_path, b"PUT /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                                          b"Content-Length: 40\r\n\r\nabc")
    assert len(answers) == 1 and answers[0][0] == 400, answers
    assert "Content-Length" in json_error(answers[0])


# -- 2. no request hides inside another ------------------------------------------------------


def test_body_of_a_get_is_never_run_as_the_next_request(agent_with_web_db):
    agent = agent_with_web_db
    hidden = b"DELETE /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    request = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(hidden), hidden)
    answers = exchange(agent.socket_path, request)
    assert [status for status, _, _ in answers] == [200], answers
    assert json.loads(answers[0][2])["digest"] == agent.digest
    assert agent.client.health()["digest"] == agent.digest, "the hidden DELETE cleared the policy"


def test_chunked_get_is_refused_and_its_body_never_run(agent_with_web_db):
    agent = agent_with_web_db
    hidden = b"DELETE /v1/policy HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    answers = exchange(agent.socket_path, b"GET /v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                       b"\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(hidden), hidden))
    assert [status for status, _, _ in answers] == [411], answers
    assert "Content-Length" in json_error(answers[0])
    assert agent.client.health()["digest"] == agent.digest


def test_well_formed_requests_on_one_connection_all_answered(agent_with_web_db):
    """Keep-alive is kept: a conditional PUT then a GET on one connection (what seeding sends)."""
    agent = agent_with_web_db
    with open(WEB_DB) as handle:
        text = handle.read()
    conditional = put_policy(text).replace(b"Host: x\r\n", b'Host: x\r\nIf-None-Match: "%s"\r\n'
                                           % agent.digest.encode())
    answers = exchange(agent.socket_path, conditional + b"GET /v1/policy HTTP/1.1\r\nHost: x\r\n\r\n")
    assert [status for status, _, _ in answers] == [412, 200], answers
    assert json.loads(answers[1][2])["digest"] == agent.digest


# -- 3. http.server's own parse errors are JSON too ------------------------------------------


PARSE_ERRORS = {
    "unknown method": (b"BREW /v1/health HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    "garbage request line": (b"\x16\x03\x01 hello there\r\n\r\n", 400),
    "one word": (b"hello\r\n\r\n", 400),
    "no HTTP version": (b"GET /v1/health\r\n\r\n", 400),
    "HTTP/9.9": (b"GET /v1/health HTTP/9.9\r\nHost: x\r\n\r\n", 505),
    "70 kB URI": (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "150 headers": (b"GET /v1/health HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % n for n in range(150))
                    + b"\r\n", 431),
}


@pytest.mark.parametrize("case", sorted(PARSE_ERRORS))
def test_parse_errors_are_json(agent_with_web_db, case):
    request, status = PARSE_ERRORS[case]
    answers = exchange(agent_with_web_db.socket_path, request)
    assert len(answers) == 1 and answers[0][0] == status, answers
    json_error(answers[0])
    assert agent_with_web_db.client.health()["digest"] == agent_with_web_db.digest


# -- 5. a client that hangs up; a crash in the middle of a write -----------------------------


def test_client_hanging_up_mid_request_is_one_log_line(bare_agent):
    before = bare_agent.log().splitlines()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(bare_agent.socket_path)
        sock.sendall(b"POST /v1/endpoints HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"ip\":")
    # The agent answers on the next request only after it dealt with the one above.
    assert bare_agent.client.health()["ok"] is True
    new = bare_agent.log().splitlines()[len(before):]
    assert "Traceback" not in "\n".join(new), "\n".join(new)
    about_it = [line for line in new if "client" in line]
    assert len(about_it) == 1, new
    assert bare_agent.client.endpoints() == []


def test_temp_files_of_an_interrupted_write_are_removed_at_start():
    import tempfile

    agent = new_agent()
    try:
        agent.start()
        with open(WEB_DB) as handle:
            digest = agent.client.apply_policy(handle.read())["digest"]
        agent.kill()
        # What kill -9 between write_atomically's mkstemp and its rename leaves behind.
        leftovers = []
        for name in ("policy.yaml", "endpoints.json"):
            fd, path = tempfile.mkstemp(prefix=f".{name}.", dir=agent.state_dir)
            os.write(fd, b"half")
            os.close(fd)
            leftovers.append(os.path.basename(path))
        with open(os.path.join(agent.state_dir, ".keep-me"), "w") as handle:
            handle.write("not the agent's temp file\n")
        agent.start()
        assert agent.client.health()["digest"] == digest
        assert sorted(os.listdir(agent.state_dir)) == [".keep-me", "policy.yaml"], os.listdir(agent.state_dir)
        log = agent.log()
        assert all(name in log for name in leftovers), log
    finally:
        cleanup_agent(agent)

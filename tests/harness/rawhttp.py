"""Raw HTTP/1.1 over a unix socket, for tests that must control every byte sent."""

import json
import socket


def exchange(socket_path, data, half_close=True):
    """Send raw bytes, (optionally) shut the write side, read until the agent closes.

    Returns the list of (status, headers, body) answers, in order."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(socket_path)
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except BrokenPipeError:
            pass                    # the agent refused early and closed: its answer is still there
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return parse_answers(received)


def parse_answers(received):
    answers = []
    while received:
        head, separator, rest = received.partition(b"\r\n\r\n")
        assert separator, f"answer without a header block: {received[:200]!r}"
        lines = head.decode("iso-8859-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        assert version == "HTTP/1.1", lines[0]
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers["content-length"])
        body, received = rest[:length], rest[length:]
        assert len(body) == length, "truncated answer"
        answers.append((int(status), headers, body))
    return answers


def json_error(answer):
    """The answer is a documented error: JSON content, {"error": one line}; returns the message."""
    status, headers, body = answer
    assert headers.get("content-type") == "application/json", (status, headers, body[:200])
    document = json.loads(body)
    assert list(document) == ["error"], document
    message = document["error"]
    assert message and "\n" not in message, message
    return message


def request(method, path, document=None):
    """The bytes of one well-formed request with a JSON body (or none)."""
    body = b"" if document is None else json.dumps(document).encode()
    return b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        method.encode(), path.encode(), len(body), body)


def call(socket_path, method, path, document=None):
    """One request on its own connection: (status, JSON document)."""
    answers = exchange(socket_path, request(method, path, document))
    assert len(answers) == 1, answers
    status, _, body = answers[0]
    return status, json.loads(body)

"""The Docker plugin wire protocol, spoken over a real unix socket as dockerd speaks it."""

import http.client
import json
import os
import socket
import stat
import threading

import pytest

from bayctl.errors import NodeError
from bayctl.node.docker_protocol import CONTENT_TYPE, PluginServer


class _Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


@pytest.fixture
def server(tmp_path):
    def fails(request):
        raise NodeError("group 'nosuch' is not in the node's policy\n(groups: web, db)")

    def bug(request):
        raise KeyError("NetworkID")

    routes = {"/Plugin.Activate": lambda r: {"Implements": ["NetworkDriver", "IpamDriver"]},
              "/NetworkDriver.Echo": lambda r: {"Got": r}, "/NetworkDriver.Fails": fails,
              "/NetworkDriver.Bug": bug}
    path = str(tmp_path / "plugins" / "bplgunit.sock")
    srv = PluginServer(path, routes)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def post(server, path, body=b"{}"):
    conn = _Unix(server.socket_path)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.getheader("Content-Type"), json.loads(response.read())


def test_socket_is_root_only(server):
    assert stat.S_IMODE(os.stat(server.socket_path).st_mode) == 0o600


def test_answers_carry_the_plugin_content_type(server):
    status, ctype, body = post(server, "/Plugin.Activate")
    assert (status, ctype) == (200, CONTENT_TYPE)
    assert body == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert post(server, "/NetworkDriver.Echo", b'{"a": 1}')[2] == {"Got": {"a": 1}}


def test_errors_are_500_with_one_line_err(server):
    status, _, body = post(server, "/NetworkDriver.Fails")
    assert status == 500 and body == {"Err": "group 'nosuch' is not in the node's policy (groups: web, db)"}
    status, _, body = post(server, "/NetworkDriver.Bug")
    assert status == 500 and body["Err"].startswith("bayctl internal error in /NetworkDriver.Bug")
    assert "\n" not in body["Err"] and "Traceback" not in body["Err"]


def test_bad_bodies_and_unknown_calls(server):
    status, _, body = post(server, "/NetworkDriver.Echo", b"{not json")
    assert status == 400 and "bad request body" in body["Err"]
    status, _, body = post(server, "/NetworkDriver.Frobnicate")
    assert status == 404 and "not implemented" in body["Err"]


def test_refuses_to_replace_something_that_is_not_a_socket(tmp_path):
    path = tmp_path / "taken.sock"
    path.write_text("precious")
    with pytest.raises(Exception, match="not a socket"):
        PluginServer(str(path), {})
    assert path.read_text() == "precious"


def test_second_server_on_a_live_socket_is_refused(server):
    refusal = f"another bayctl-docker-plugin is already running at {server.socket_path}"
    with pytest.raises(NodeError, match=refusal):
        PluginServer(server.socket_path, {})
    assert post(server, "/Plugin.Activate")[0] == 200, "the first server still answers"


def test_a_server_removes_only_its_own_socket(server):
    # Someone removed our socket and a successor serves on the path now.
    os.unlink(server.socket_path)
    routes = {"/Plugin.Activate": lambda r: {"Implements": ["Successor"]}}
    successor = PluginServer(server.socket_path, routes)
    thread = threading.Thread(target=successor.serve_forever, daemon=True)
    thread.start()
    try:
        server.shutdown()
        server.server_close()           # the first one exits: it must leave the successor's socket
        assert stat.S_ISSOCK(os.lstat(server.socket_path).st_mode)
        assert post(successor, "/Plugin.Activate")[2] == {"Implements": ["Successor"]}
    finally:
        successor.shutdown()
        successor.server_close()
    assert not os.path.exists(server.socket_path), "its own socket is removed on exit"


def test_framing_errors_are_err_documents(server):
    """The plugin speaks through the agent's hardened transport: bad framing never runs."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(server.socket_path)
        sock.sendall(b"POST /NetworkDriver.Echo HTTP/1.1\r\nContent-Length: 50\r\n\r\n{}")
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), answer
    assert CONTENT_TYPE.encode() in head
    assert "ended after 2 of 50 bytes" in json.loads(body)["Err"]

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

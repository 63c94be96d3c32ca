"""Two real `bayctl-docker-plugin` processes on one --plugin-dir (no dockerd needed).

A second plugin must not take over the socket of a live one, and a plugin that exits
removes its own socket only, never a successor's.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
from harness.prereq import require_root

pytestmark = pytest.mark.root


class _Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def activate(socket_path):
    conn = _Unix(socket_path)
    try:
        conn.request("POST", "/Plugin.Activate", body=b"{}")
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.fixture
def plugin_dir():
    require_root()
    root = tempfile.mkdtemp(prefix="bplgs-", dir="/var/tmp")
    processes = []

    def start(tag, wait=True):
        argv = [sys.executable, "-m", "bayctl.node.docker_driver", "--name", "bplgs",
                "--plugin-dir", os.path.join(root, "plugins"),
                "--state-dir", os.path.join(root, f"state{tag}"),
                "--agent-socket", os.path.join(root, "no-agent.sock"), "--link-mode", "veth"]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        if wait:
            socket_path = os.path.join(root, "plugins", "bplgs.sock")
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, process.stdout.read()
                try:
                    if activate(socket_path) == 200:
                        break
                except OSError:
                    assert time.monotonic() < deadline, "plugin never answered"
                time.sleep(0.05)
        return process

    start.socket = os.path.join(root, "plugins", "bplgs.sock")
    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
    subprocess.run(["rm", "-rf", "--", root], check=False)


def test_second_plugin_refuses_while_the_first_answers(plugin_dir):
    first = plugin_dir(1)
    second = plugin_dir(2, wait=False)
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 1, output
    assert f"another bayctl-docker-plugin is already running at {plugin_dir.socket}" in output
    assert "Traceback" not in output
    assert first.poll() is None and activate(plugin_dir.socket) == 200


def test_exiting_plugin_leaves_a_successors_socket(plugin_dir):
    first = plugin_dir(1)
    os.unlink(plugin_dir.socket)                # e.g. an operator cleaning up by hand
    plugin_dir(2)                               # the successor binds the path anew
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=30)
    assert activate(plugin_dir.socket) == 200, "the first plugin's exit removed the successor's socket"

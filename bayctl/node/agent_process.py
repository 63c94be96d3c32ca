"""Run a node agent as a child process: the demo, the local bay and the tests use this.

Each agent gets its own socket, pin dir and state dir, so several can share a machine
(the local bay runs one per namespace node). `netns` runs it inside a network namespace
with nsenter --net, which (unlike `ip netns exec`) keeps the caller's /sys and so its
bpffs pins.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

from bayctl.errors import NodeError
from bayctl.node.client import AgentClient

READY_TIMEOUT = 30.0
AGENT_CWD = "/"  # never the caller's directory, whatever lies there


def agent_python():
    """argv that runs the agent module of the bayctl this Python imports.

    `python -m` puts the current directory first on sys.path, so a `bayctl/` folder there
    (another checkout) would be run instead. -P (3.11+) leaves it out; older Pythons get -I
    (isolated: also ignores PYTHON* variables and the user's site directory)."""
    flag = "-P" if sys.version_info >= (3, 11) else "-I"
    return [sys.executable, flag, "-m", "bayctl.node.agent"]


class AgentProcess:
    def __init__(self, socket_path, pin_dir, state_dir, netns=None, log_path=None, extra_args=()):
        self.socket_path = socket_path
        self.pin_dir = pin_dir
        self.state_dir = state_dir
        self.netns = netns
        self.log_path = log_path
        self.extra_args = list(extra_args)  # more bayctl-agent options, e.g. --conntrack-timeouts
        self.process = None
        self._log = None

    @property
    def client(self):
        return AgentClient(self.socket_path)

    def command(self):
        argv = [*agent_python(), "--socket", self.socket_path,
                "--pin-dir", self.pin_dir, "--state-dir", self.state_dir, *self.extra_args]
        if self.netns:
            argv = ["nsenter", f"--net={self.netns}", *argv]
        return argv

    def start(self, timeout=READY_TIMEOUT):
        """Start the agent and wait until its API answers. Raises NodeError with its log if not."""
        self.spawn()
        self.wait_ready(timeout)
        return self

    def spawn(self):
        """Start the agent without waiting (start several, then `wait_ready` each)."""
        if self.process and self.process.poll() is None:
            raise NodeError(f"agent at {self.socket_path} is already running (pid {self.process.pid})")
        if self._log is None:       # a restarted agent appends to the same log
            # a+b, not ab: log_tail() reads it back to say why a start failed.
            self._log = open(self.log_path, "a+b") if self.log_path else tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=AGENT_CWD,
            # The agent's own session: a Ctrl-C meant for the caller does not kill enforcement's owner.
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        client = AgentClient(self.socket_path, timeout=5)
        while True:
            if self.process.poll() is not None:
                raise NodeError(f"agent exited with status {self.process.returncode}: {self.log_tail()}")
            try:
                return client.health()
            except NodeError:
                if time.monotonic() > deadline:
                    raise NodeError(f"agent at {self.socket_path} not ready after {timeout:g} s: "
                                    f"{self.log_tail()}") from None
            time.sleep(0.05)

    def stop(self, timeout=10.0):
        """SIGTERM and wait: the agent exits leaving pins and attached programs in place."""
        return self._end(signal.SIGTERM, timeout)

    def kill(self, timeout=10.0):
        """SIGKILL (a crash): nothing of the agent's runs any more; the datapath must not care."""
        return self._end(signal.SIGKILL, timeout)

    def _end(self, signum, timeout):
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            if self._log:
                self._log.flush()

    def log(self):
        """Everything the agent wrote so far (stderr and stdout)."""
        if self._log is None:
            return ""
        self._log.flush()
        # pread: the child shares this file offset; moving it would make it overwrite its log.
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", "replace")

    def log_tail(self, lines=5):
        tail = self.log().strip().splitlines()[-lines:]
        return " | ".join(tail) or "(no output)"

    def close(self):
        self.stop()
        if self._log:
            self._log.close()
            self._log = None


def remove_tree(path):
    """Remove a state dir or a bpffs pin dir (pins are files: unlink them, then the dirs)."""
    if not os.path.lexists(path):
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(root, name))
        for name in dirs:
            os.rmdir(os.path.join(root, name))
    os.rmdir(path)

"""The processes of a local bay's nodes: one sshd per node and one agent per slave.

Both run inside the node's network namespace (entered with nsenter --net, so the agent's
bpffs pins land in this machine's /sys/fs/bpf) and in their own session, so a Ctrl-C meant
for bayctl does not take the bay down. They are found again by namespace and command line,
never by a broad name: a process belongs to a node when its network namespace is the
node's and its command line names the node's own files.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from typing import List, Optional

from bayctl.errors import NodeError
from bayctl.providers import local_net

SSHD = "/usr/sbin/sshd"
SOCKET_ROOT = "/run/bayctl"
BPFFS = "/sys/fs/bpf"


class NodeFiles:
    """Where one node's files live: config and keys in the bay's state dir, socket under /run,
    pins under bpffs."""

    def __init__(self, bay: str, node: str, bay_state_dir: str):
        self.bay, self.node = bay, node
        self.dir = os.path.join(bay_state_dir, "nodes", node)
        self.sshd_config = os.path.join(self.dir, "sshd_config")
        self.host_key = os.path.join(self.dir, "ssh_host_ed25519_key")
        self.sshd_log = os.path.join(self.dir, "sshd.log")
        self.agent_state = os.path.join(self.dir, "agent")
        self.agent_log = os.path.join(self.dir, "agent.log")
        self.agent_socket = os.path.join(socket_dir(bay), f"{node}.sock")
        self.home = os.path.join(self.dir, "home")
        self.pin_dir = os.path.join(BPFFS, local_net.netns_name(bay, node))
        self.netns = local_net.netns_path(bay, node)


def socket_dir(bay: str) -> str:
    return os.path.join(SOCKET_ROOT, local_net.netns_name(bay, "sockets"))


def bayctl_bin_dir() -> str:
    """Where this bayctl's console scripts are: a node session finds `bayctl` there first,
    as it would on a node image where bayctl is installed."""
    return os.path.dirname(sys.executable)


# --- ssh ---------------------------------------------------------------------------------

def generate_host_key(path: str, comment: str, key_type: str = "ed25519") -> None:
    """A new key pair at path / path.pub (ssh-keygen, the tool sshd's keys come from)."""
    argv = ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", path]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise NodeError(f"ssh-keygen for {comment}: {done.stderr.strip()}")


def ensure_host_key(files: NodeFiles) -> str:
    """The node's host key (made once); returns its public half in OpenSSH form."""
    os.makedirs(files.dir, mode=0o700, exist_ok=True)
    if not os.path.exists(files.host_key):
        generate_host_key(files.host_key, f"{files.bay}-{files.node}")
    with open(files.host_key + ".pub") as handle:
        return handle.read().strip()


def node_path_env() -> str:
    """PATH of a node session: this bayctl first, then the system's directories."""
    return ":".join([bayctl_bin_dir(), "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin",
                     "/sbin", "/bin"])


def render_sshd_config(listen: str, host_keys: List[str], authorized_keys: str, forwarding: bool,
                       agent_socket: str, home: str, max_startups: str = "64:30:128") -> str:
    """A node's sshd_config: key authentication only, this bayctl on PATH, the node's agent
    socket and HOME in every session. The local bay and the tests' sshd nodes both use it."""
    lines = [
        f"ListenAddress {listen}",
        *(f"HostKey {path}" for path in host_keys),
        f"AuthorizedKeysFile {authorized_keys}",
        "PidFile none",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # The bay's files sit wherever its state dir is (tests: under /tmp); they are made
        # 0600/0700 by bayctl, so sshd's walk up the path adds nothing.
        "StrictModes no",
        f"AllowTcpForwarding {'yes' if forwarding else 'no'}",
        "X11Forwarding no",
        "MaxSessions 64",
        f"MaxStartups {max_startups}",
        "LogLevel ERROR",
        # What a node image sets system-wide: where bayctl is and which agent is this node's.
        # HOME is the node's own, as root's home would be on a slave: otherwise the login shell
        # sources this machine's ~/.bashrc (a pyenv set-up there costs ~0.5 s per command).
        f"SetEnv PATH={node_path_env()} BAYCTL_AGENT_SOCKET={agent_socket} HOME={home}",
    ]
    return "\n".join(lines) + "\n"


def write_sshd_config(files: NodeFiles, address: str, authorized_keys: str, forwarding: bool) -> None:
    os.makedirs(files.home, mode=0o700, exist_ok=True)
    text = render_sshd_config(f"{address}:22", [files.host_key], authorized_keys, forwarding,
                              files.agent_socket, files.home)
    with open(files.sshd_config, "w") as handle:
        handle.write(text)
    os.chmod(files.sshd_config, 0o600)


def ensure_sshd(files: NodeFiles) -> int:
    """Start the node's sshd unless it runs; returns its pid."""
    running = find_process(files, "sshd", files.sshd_config)
    if running:
        return running
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    check = subprocess.run([SSHD, "-t", "-f", files.sshd_config], capture_output=True, text=True)
    if check.returncode != 0:
        raise NodeError(f"sshd config of {files.node}: {check.stderr.strip()}")
    return _spawn(files, local_net.in_netns(files.netns, [SSHD, "-D", "-e", "-f", files.sshd_config]),
                  files.sshd_log, "sshd", files.sshd_config)


def port_open(address: str, port: int) -> bool:
    """Whether something accepts TCP at address:port now (a node's sshd is up)."""
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return True
    except OSError:
        return False


# --- agent -------------------------------------------------------------------------------

def ensure_agent(files: NodeFiles) -> int:
    running = find_process(files, "bayctl.node.agent", files.agent_socket)
    if running:
        return running
    os.makedirs(os.path.dirname(files.agent_socket), mode=0o700, exist_ok=True)
    os.makedirs(files.agent_state, mode=0o700, exist_ok=True)
    from bayctl.node.agent_process import agent_python

    argv = [*agent_python(), "--socket", files.agent_socket,
            "--pin-dir", files.pin_dir, "--state-dir", files.agent_state]
    return _spawn(files, local_net.in_netns(files.netns, argv), files.agent_log, "bayctl.node.agent",
                  files.agent_socket)


# --- processes ---------------------------------------------------------------------------

def _spawn(files: NodeFiles, argv: List[str], log_path: str, program: str, marker: str) -> int:
    """Start a daemon detached from bayctl (setsid --fork: init, not this process, is its
    parent, so it outlives bayctl and leaves no zombie); returns its pid once it runs."""
    with open(log_path, "ab") as log:
        subprocess.run(["setsid", "--fork", *argv], stdin=subprocess.DEVNULL, stdout=log,
                       stderr=subprocess.STDOUT, check=True, close_fds=True,
                       cwd="/")  # a daemon holds no user's directory (nor imports from it)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = find_process(files, program, marker)
        if pid:
            return pid
        time.sleep(0.02)
    raise NodeError(f"{program} of {files.node} did not start: {tail(log_path)}")


def tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, errors="replace") as handle:
            return " | ".join(handle.read().strip().splitlines()[-lines:]) or "(no output)"
    except OSError:
        return "(no log)"


def find_process(files: NodeFiles, program: str, marker: str) -> Optional[int]:
    for pid in local_net.processes_in(files.netns):
        # sshd rewrites its argv into one line ("sshd: /usr/sbin/sshd -D -f CONFIG [listener]").
        words = " ".join(cmdline(pid)).split()
        if any(program in word for word in words) and marker in words:
            return pid
    return None


def cmdline(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [word.decode(errors="replace") for word in handle.read().split(b"\0") if word]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def stop_all(pids: List[int], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL whatever is still there after `timeout`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(pid) for pid in pids):
            time.sleep(0.05)
        if not any(alive(pid) for pid in pids):
            return

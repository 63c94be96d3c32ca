"""A private ZooKeeper server: Debian's `zookeeper` package, our own config, port and data dir.

Used by the local bay (one server on its master node, inside the master's namespace) and by
the tests and benchmarks. Never the system service: the server is a plain java process with a
zoo.cfg written here, its data and log under `directory`, found again by that config's path
on its command line (never by a broad name).
"""

import os
import signal
import socket
import subprocess
import time
from typing import List, Optional

from bayctl.errors import NodeError
from bayctl.model import ZOOKEEPER_PORT
from bayctl.providers import local_nodes

ZOOKEEPER_JAR = "/usr/share/java/zookeeper.jar"   # Debian's zookeeper package (its manifest
                                                  # names the jars it needs)
JAVA = "/usr/bin/java"
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
# A small heap: one bay's policy record and a report per node (a few MB at 1,000 nodes).
HEAP = "-Xmx256m"


class ZooKeeperServer:
    """One standalone ZooKeeper. `netns`: a namespace path to run it in (the local master)."""

    def __init__(self, directory: str, address: str = "127.0.0.1", port: int = ZOOKEEPER_PORT,
                 netns: Optional[str] = None):
        self.directory = os.path.abspath(directory)
        self.address, self.port, self.netns = address, port, netns
        self.config = os.path.join(self.directory, "zoo.cfg")
        self.data_dir = os.path.join(self.directory, "data")
        self.log = os.path.join(self.directory, "zookeeper.log")

    @property
    def hosts(self) -> str:
        return f"{self.address}:{self.port}"

    def write_config(self) -> None:
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        lines = [
            "tickTime=2000",
            f"dataDir={self.data_dir}",
            f"clientPortAddress={self.address}",
            f"clientPort={self.port}",
            "maxClientCnxns=0",            # one connection per agent, thousands of agents
            "admin.enableServer=false",    # no Jetty admin port next to ours
            "4lw.commands.whitelist=ruok,mntr,srvr",
            "autopurge.snapRetainCount=3",
            "autopurge.purgeInterval=1",
            # ZooKeeper 3.8 asks for a SASL client login it does not need for digest ACLs.
            "sessionRequireClientSASLAuth=false",
        ]
        with open(self.config, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.chmod(self.config, 0o600)

    def argv(self) -> List[str]:
        java = [JAVA, HEAP, "-XX:+UseSerialGC", "-Xss512k",
                f"-Dzookeeper.log.dir={self.directory}", "-Dzookeeper.root.logger=INFO,CONSOLE",
                "-Dzookeeper.jmx.log4j.disable=true",
                "-cp", f"{ZOOKEEPER_JAR}", MAIN, self.config]
        if self.netns:
            java = ["nsenter", f"--net={self.netns}", *java]
        return java

    def pid(self) -> Optional[int]:
        """The server running with this config, if any (found by the config path)."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    words = handle.read().split(b"\0")
            except OSError:
                continue
            if self.config.encode() in words and MAIN.encode() in words:
                return int(entry)
        return None

    def start(self, timeout: float = 60.0) -> int:
        """Start the server unless it runs; returns its pid once it answers `ruok`."""
        if not os.path.exists(ZOOKEEPER_JAR):
            raise NodeError(f"ZooKeeper is not installed ({ZOOKEEPER_JAR} missing): "
                            "apt-get install zookeeper (tools/setup.d/65-zookeeper.sh)")
        pid = self.pid()
        if pid is None:
            self.write_config()
            with open(self.log, "ab") as log:
                # setsid --fork: a daemon of its own (init its parent), outliving bayctl.
                subprocess.run(["setsid", "--fork", *self.argv()], stdin=subprocess.DEVNULL, stdout=log,
                               stderr=subprocess.STDOUT, check=True, close_fds=True, cwd="/")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.pid()
            if pid and self.healthy():
                return pid
            if pid is None and time.monotonic() > deadline - timeout + 5:
                break
            time.sleep(0.2)
        raise NodeError(f"ZooKeeper on {self.hosts} did not start: {local_nodes.tail(self.log)} "
                        f"(log: {self.log})")

    def healthy(self) -> bool:
        return four_letter_word(self.address, self.port, b"ruok") == b"imok"

    def stop(self, timeout: float = 20.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
                    return
                time.sleep(0.05)


def four_letter_word(address: str, port: int, word: bytes, timeout: float = 2.0) -> bytes:
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.sendall(word)
            chunks = []
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
    except OSError:
        return b""


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] == "Z"
    except (OSError, IndexError):
        return True

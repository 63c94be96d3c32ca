"""Host keys of a bay's nodes: trusted on first use, then enforced.

Each bay keeps one OpenSSH-format known_hosts file in its state directory. The first
connection to a node records the key the node presented; every later connection must
present that same key, or it is refused before authentication with a reason that says
which file to edit if the node was really rebuilt. Nothing here ever reads ~/.ssh: a
bay's trust is its own.
"""

import os
import threading
from typing import Dict, List, Optional

import asyncssh

from bayctl.remote.errors import HostKeyChanged

KNOWN_HOSTS_NAME = "known_hosts"


# Host key types asked for on first contact, in OpenSSH's own order: Ed25519 is the cheapest
# for the node to sign with (asyncssh's defaults would ask a Debian node for RSA first).
FIRST_CONTACT_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


def host_pattern(host: str, port: int) -> str:
    """The name OpenSSH gives host:port in known_hosts ("[h]:p" unless p is 22)."""
    return host if port == 22 else f"[{host}]:{port}"


class TofuKnownHosts:
    """The known_hosts file of one bay; one instance is shared by all connections of a run."""

    def __init__(self, bay_state_dir):
        self.path = os.path.join(os.fspath(bay_state_dir), KNOWN_HOSTS_NAME)
        self._lock = threading.Lock()
        self._keys: Dict[str, asyncssh.SSHKey] = {}
        self.refused: Dict[str, HostKeyChanged] = {}  # pattern -> why, for this run's reports
        self._load()

    def _load(self):
        if not os.path.exists(self.path):
            return
        with open(self.path) as handle:
            for number, line in enumerate(handle, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    pattern, key_text = line.split(None, 1)
                    self._keys[pattern] = asyncssh.import_public_key(key_text)
                except (ValueError, asyncssh.KeyImportError) as exc:
                    # Fail closed: an unreadable trust file must not turn into "trust anything".
                    raise ValueError(f"{self.path}:{number}: unreadable known_hosts line ({exc})") from None

    def recorded(self, host: str, port: int) -> Optional[asyncssh.SSHKey]:
        return self._keys.get(host_pattern(host, port))

    def host_key_algs(self, host: str, port: int) -> List[str]:
        """The host key algorithms to offer host:port: the recorded key's first, so the node
        presents that very key (any other it presents is refused as changed), else Ed25519
        first; every algorithm asyncssh supports follows, so no node is refused for its key type."""
        from asyncssh.public_key import get_default_public_key_algs

        recorded = self.recorded(host, port)
        first = [alg.decode() for alg in recorded.sig_algorithms] if recorded else list(FIRST_CONTACT_TYPES)
        rest = [alg.decode() for alg in get_default_public_key_algs()]
        return first + [alg for alg in rest if alg not in first]

    def check_or_record(self, host: str, port: int, key: asyncssh.SSHKey) -> None:
        """Accept `key` for host:port if it is the recorded one or the first one seen."""
        pattern = host_pattern(host, port)
        with self._lock:
            known = self._keys.get(pattern)
            if known is None:
                self._record(pattern, key)
                return
        if known.public_data != key.public_data:
            self.refused[pattern] = HostKeyChanged(
                f"host key changed for {pattern} (recorded {known.get_fingerprint()}, "
                f"presented {key.get_fingerprint()}): refusing to connect; if the node was "
                f"rebuilt, remove its line from {self.path}")
            raise self.refused[pattern]

    def _record(self, pattern: str, key: asyncssh.SSHKey) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        line = f"{pattern} {key.export_public_key('openssh').decode().strip()}\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        with os.fdopen(fd, "a") as handle:
            handle.write(line)
        self._keys[pattern] = key

    def client_factory(self):
        """An asyncssh client class bound to this file (pass as `client_factory`)."""
        trust = self

        class _TofuClient(asyncssh.SSHClient):
            # asyncssh calls this for every key not in the (empty) trusted list, before
            # authentication: the key is checked here and nowhere else.
            def validate_host_public_key(self, host, addr, port, key):
                try:
                    trust.check_or_record(host, port, key)
                except HostKeyChanged:
                    return False
                return True

        return _TofuClient


def no_preloaded_keys(host, addr, port):
    """known_hosts callable: trust nothing up front, so every key reaches the TOFU check."""
    return [], [], []

"""The agent's state on disk: the last applied policy and the registered endpoints.

The datapath's pinned maps keep enforcing across an agent restart; this store is what
lets the restarted agent know WHAT it is enforcing (the policy text, endpoint names and
interfaces) and re-apply it after a reboot, when the pins are gone.

Every write is atomic (temp file in the same directory, fsync, rename, fsync of the
directory): a crash leaves either the old or the new file, never a torn one.
"""

import json
import logging
import os

from bayctl.atomicfile import fsync_dir, remove_leftovers, write_atomically
from bayctl.errors import NodeError

LOG = logging.getLogger(__name__)

POLICY_FILE = "policy.yaml"
ENDPOINTS_FILE = "endpoints.json"
STAGED_FILE = "staged.json"     # audit mode: {"text", "source", "since"} of the staged policy


class StateStore:
    """Files under `state_dir` (created 0700: the policy is the node's security configuration)."""

    def __init__(self, state_dir):
        self.state_dir = state_dir

    def ensure_dir(self):
        try:
            os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise NodeError(f"cannot create state dir {self.state_dir}: {exc.strerror}") from exc

    def remove_leftovers(self):
        """Drop the temp files of writes a crash interrupted (the agent calls it at start,
        when it alone owns the state dir); returns their names."""
        removed = []
        for name in (POLICY_FILE, ENDPOINTS_FILE, STAGED_FILE):
            try:
                removed += remove_leftovers(self._path(name))
            except OSError as exc:
                raise NodeError(f"cannot clean up {self.state_dir}: {exc.strerror}") from exc
        return removed

    # -- policy -------------------------------------------------------------------------------

    def load_policy_text(self):
        """The last applied policy's YAML text, or None when none was applied (or it was cleared)."""
        return self._read(POLICY_FILE)

    def save_policy_text(self, text):
        self._write(POLICY_FILE, text.encode("utf-8"))

    def clear_policy(self):
        self._remove(POLICY_FILE)

    # -- staged policy (audit mode) -----------------------------------------------------------

    def load_staged(self):
        """{"text", "source", "since"} of the staged policy, or None."""
        text = self._read(STAGED_FILE)
        if text is None:
            return None
        try:
            staged = json.loads(text)
            if not isinstance(staged, dict) or not isinstance(staged.get("text"), str):
                raise TypeError('needs a "text" string')
            return staged
        except (ValueError, TypeError) as exc:
            raise NodeError(f"{self._path(STAGED_FILE)}: unreadable staged policy: {exc}") from exc

    def save_staged(self, staged):
        self._write(STAGED_FILE, (json.dumps(staged, sort_keys=True) + "\n").encode())

    def clear_staged(self):
        self._remove(STAGED_FILE)

    # -- endpoints ----------------------------------------------------------------------------

    def load_endpoints(self):
        """Registered endpoints as a list of dicts {ip, tag, group, ifname, netns}."""
        text = self._read(ENDPOINTS_FILE)
        if text is None:
            return []
        try:
            data = json.loads(text)
            endpoints = data["endpoints"]
            if not isinstance(endpoints, list):
                raise TypeError("endpoints is not a list")
            for index, ep in enumerate(endpoints):
                if not isinstance(ep, dict) or not isinstance(ep.get("ip"), str) or \
                        not isinstance(ep.get("tag"), int) or isinstance(ep.get("tag"), bool):
                    raise TypeError(f"endpoints[{index}] needs an \"ip\" string and a \"tag\" number")
            return endpoints
        except (ValueError, KeyError, TypeError) as exc:
            raise NodeError(f"{self._path(ENDPOINTS_FILE)}: unreadable endpoint state: {exc}") from exc

    def save_endpoints(self, endpoints):
        document = {"endpoints": sorted(endpoints, key=lambda ep: ep["ip"])}
        self._write(ENDPOINTS_FILE, (json.dumps(document, indent=1, sort_keys=True) + "\n").encode())

    # -- files --------------------------------------------------------------------------------

    def _path(self, name):
        return os.path.join(self.state_dir, name)

    def _read(self, name):
        try:
            with open(self._path(name), encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise NodeError(f"cannot read {self._path(name)}: {exc.strerror}") from exc

    def _write(self, name, data):
        self.ensure_dir()
        try:
            write_atomically(self._path(name), data)
        except OSError as exc:
            raise NodeError(f"cannot write {self._path(name)}: {exc.strerror}") from exc

    def _remove(self, name):
        try:
            os.unlink(self._path(name))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise NodeError(f"cannot remove {self._path(name)}: {exc.strerror}") from exc
        fsync_dir(self.state_dir)

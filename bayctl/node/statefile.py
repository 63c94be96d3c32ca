"""A JSON state file shared by concurrent processes and threads: locked, written atomically.

The IPAM and the Docker driver keep their state here. A read-modify-write happens under an
exclusive fcntl lock on a sibling `.lock` file (flock locks belong to the open file
description, so two threads of one process exclude each other too), and the new state
replaces the old by rename after fsync: a crash leaves either the old or the new file,
never a torn one.
"""

import contextlib
import fcntl
import json
import os
import threading

from bayctl.atomicfile import write_atomically
from bayctl.errors import NodeError


class StateFile:
    def __init__(self, path, default=None):
        self.path = os.fspath(path)
        self.default = default if default is not None else {}
        self._lock_path = self.path + ".lock"
        self._thread_lock = threading.RLock()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), mode=0o700, exist_ok=True)

    def read(self):
        """The current state (a fresh copy), or the default if nothing was ever written."""
        try:
            with open(self.path) as f:
                return json.load(f)
        except FileNotFoundError:
            return json.loads(json.dumps(self.default))
        except ValueError as e:
            raise NodeError(f"{self.path}: state file is not valid JSON ({e})") from None

    @contextlib.contextmanager
    def update(self):
        """Yield the state to change in place; it is written back if the block succeeds and
        changed it (a write is two fsyncs under the lock every other writer waits on: the
        IPAM's "create the pool unless it exists" and "release what this owner holds" are
        most often no change at all)."""
        with self._thread_lock, open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self.read()
                before = json.dumps(state, sort_keys=True)
                yield state
                if json.dumps(state, sort_keys=True) != before:
                    self._write(state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, state):
        write_atomically(self.path, json.dumps(state, indent=1, sort_keys=True))

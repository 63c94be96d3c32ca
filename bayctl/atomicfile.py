"""Crash-safe file replacement, the one implementation every state store uses.

The new content goes to a temp file in the same directory, is fsync'd, renamed over the
old file, and the directory is fsync'd: a crash leaves either the old or the new file,
never a torn one. Stdlib only, so the node side (which runs on slaves with few
dependencies) can use it as well as the controller side.
"""

import contextlib
import os
import tempfile


def write_atomically(path, data, mode=0o600):
    """Replace `path` with `data` (str or bytes), created with permissions `mode`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def fsync_dir(directory):
    # A rename (or unlink) is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(path):
    """Remove the temp files a writer of `path` killed mid-write (kill -9, power loss) left
    behind; returns their names. Only when no one else writes `path` now (e.g. at start)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    removed = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(prefix) and len(name) > len(prefix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))
                removed.append(name)
    return removed


def _temp_prefix(path):
    return f".{os.path.basename(path)}."

"""Run a function inside a network namespace, named by path (/run/netns/x, /proc/PID/ns/net).

A network namespace is a property of an OS thread, so (like the CNI plugins' `ns` package)
the function runs on a dedicated thread that joins the namespace with setns(2) and then ends:
no other thread of the process ever changes namespace, and a thread that could not get
back never serves anyone else. Only the network namespace changes: the mount namespace (and
so bpffs pins) stays the caller's, unlike `ip netns exec`.
"""

import ctypes
import fcntl
import os
import socket
import stat
import threading

from bayctl.errors import NodeError

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def setns(fd, nstype=CLONE_NEWNET):
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def run_in_netns(netns, func, *args, **kwargs):
    """Return func(*args, **kwargs) run inside the network namespace at path `netns`.

    `netns=None` runs it on the calling thread, in the current namespace. Exceptions raised by
    `func` propagate to the caller; a namespace that cannot be opened or joined raises
    NodeError (FileNotFoundError is kept as the cause so callers can treat "gone" as gone).
    """
    if netns is None:
        return func(*args, **kwargs)
    try:
        ns_fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NetnsGone(f"network namespace {netns} does not exist") from exc
    except OSError as exc:
        raise NodeError(f"cannot open network namespace {netns}: {exc.strerror}") from exc

    outcome = {}

    def worker():
        try:
            setns(ns_fd)
        except OSError as exc:
            outcome["error"] = NodeError(f"cannot enter network namespace {netns}: {exc.strerror}")
            return
        try:
            outcome["result"] = func(*args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    try:
        thread = threading.Thread(target=worker, name=f"netns:{netns}", daemon=True)
        thread.start()
        thread.join()
    finally:
        os.close(ns_fd)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


class NetnsGone(NodeError):
    """The namespace path does not exist (the container is gone)."""


NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h: the kind of namespace an nsfs file is


def is_network_namespace(path):
    """Whether `path` opens as a network namespace (not a regular file, not a mount/pid ns)."""
    try:
        # nsfs files are regular files; opening anything else (a FIFO, a device) could block
        # or have side effects, and cannot be a namespace anyway.
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False            # ENOTTY: not an nsfs file at all
    finally:
        os.close(fd)


def same_namespace(path, other="/proc/self/ns/net"):
    """Whether two namespace paths name one namespace (nsfs: same device and inode)."""
    try:
        a, b = os.stat(path), os.stat(other)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def interface_names(netns=None):
    """Names of the interfaces in `netns` (a path; None = the caller's namespace).
    Raises NetnsGone when the namespace no longer exists."""
    return run_in_netns(netns, lambda: {name for _, name in socket.if_nameindex()})

"""The bay's SSH key: the one place bayctl reads a private key file."""

import os

import asyncssh

from bayctl.remote.errors import KeyUnreadable


def read_private_key(ssh_key) -> asyncssh.SSHKey:
    """The private key at path `ssh_key` (an asyncssh key is returned as it is).

    KeyUnreadable names the file and the problem (missing, encrypted, bad format), never the key."""
    if isinstance(ssh_key, asyncssh.SSHKey):
        return ssh_key
    path = os.fspath(ssh_key)
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        unreadable = KeyUnreadable(f"cannot read the SSH key {path}: {why}")
        unreadable.path, unreadable.why = path, why
        raise unreadable from None


def public_key_line(ssh_key) -> str:
    """The OpenSSH public line of a private key (the private half is never printed)."""
    return read_private_key(ssh_key).export_public_key("openssh").decode().strip()

"""The one way bayctl reaches a bay's nodes: SSH with the bay's key and its own known_hosts.

    from bayctl.remote import BayShell
    async with BayShell(nodes, bay_state_dir=..., ssh_user="root", ssh_key=...) as shell:
        done = await shell.run("slave0", "uptime", timeout=30)

shell.py holds the connections (a bastion's master connection for nodes without a public
address), hostkeys.py the trust, keys.py the key reader, errors.py why a node was not reached.
"""

from bayctl.remote.errors import (
    CommandTimeout,
    ConnectTimeout,
    Disconnected,
    HostKeyChanged,
    KeyRefused,
    KeyUnreadable,
    SshError,
    TrustUnreadable,
    Unreachable,
)
from bayctl.remote.shell import BayShell

__all__ = ["BayShell", "CommandTimeout", "ConnectTimeout", "Disconnected", "HostKeyChanged", "KeyRefused",
           "KeyUnreadable", "SshError", "TrustUnreadable", "Unreachable"]

"""Why a node could not be reached or did not answer over SSH: one type per cause.

Callers decide by type (a refused key is final, an unreachable node may come up), never by
the words. Each message says what happened and where (host:port, and which time limit
fired); none carries a key or a secret.
"""

from bayctl.errors import NodeError


class SshError(NodeError):
    """Reaching a node over SSH failed. `reason` is the cause alone; str() names the node too."""

    def __init__(self, reason: str, *, node: str = ""):
        self.reason, self.node = reason, node
        super().__init__(f"{node}: {reason}" if node else reason)

    def about(self, node: str) -> "SshError":
        """The same error, named for `node`."""
        return type(self)(self.reason, node=node)

    def behind(self, what: str) -> "SshError":
        """The same error, said of what stood in the way (the bastion of a tunnelled node)."""
        return type(self)(f"{what}: {self.reason}", node=self.node)


class KeyUnreadable(SshError):
    """The bay's private key cannot be read (missing, encrypted, not a key)."""


class KeyRefused(SshError):
    """The node's sshd refused the bay's key: final until someone installs the key there."""


class TrustUnreadable(SshError):
    """The bay's known_hosts cannot be read: refused, rather than trusting anything."""


class HostKeyChanged(SshError):
    """The node presented a host key other than the one recorded in the bay's known_hosts."""


class Unreachable(SshError):
    """No SSH connection: no address, connection refused, no route, or the bastion cannot reach it."""


class Disconnected(SshError):
    """The SSH server ended the connection (or the channel) with a reason of its own."""


class ConnectTimeout(SshError):
    """The SSH connect timeout fired (TCP connect plus the SSH handshake)."""


class CommandTimeout(SshError):
    """A command on the node did not finish within its own time limit."""

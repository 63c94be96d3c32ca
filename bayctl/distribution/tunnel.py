"""bayctl's way to a ZooKeeper that only the bay's own network reaches: through the master's SSH.

A cloud bay's master runs ZooKeeper on its private address; port 2181 is open to the bay's
network only (mesosbay.yaml's security groups), never to the outside. bayctl reaches it as
seeding reaches the slaves: one SSH connection to the master (the bay's key and known_hosts,
bayctl.remote.BayShell) forwarding a loopback port of this machine to it.
"""

import asyncio
import threading

from bayctl.errors import SeedError


class Tunnel:
    """A local port forwarded through the bay's master to `target` (host:port); its own
    event loop on a daemon thread, so kazoo's threads can use it meanwhile."""

    def __init__(self, nodes, target: str, *, bay_state_dir: str, ssh_user: str, ssh_key: str):
        self.nodes, self.target = nodes, target
        self.options = dict(bay_state_dir=bay_state_dir, ssh_user=ssh_user, ssh_key=ssh_key)
        self._loop = None
        self._shell = None
        self._listener = None

    def open(self, timeout: float = 30.0) -> str:
        """Returns the local host:port that leads to the target."""
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="zk-tunnel", daemon=True).start()
        try:
            port = asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(timeout)
        except Exception as exc:  # SSH refused, no master, timeout: one line naming the way
            self.close()
            raise SeedError(f"no SSH tunnel to the bay's ZooKeeper {self.target} through its master: "
                            f"{exc or type(exc).__name__}") from None
        return f"127.0.0.1:{port}"

    async def _open(self):
        from bayctl.remote import BayShell

        master = next((node for node in self.nodes if node.public_ip), None)
        if master is None:
            raise SeedError("the bay has no master with a public address")
        self._shell = BayShell(self.nodes, **self.options)
        conn = await self._shell.connection(master.name)
        host, _, port = self.target.rpartition(":")
        self._listener = await conn.forward_local_port("127.0.0.1", 0, host, int(port))
        return self._listener.get_port()

    def close(self) -> None:
        if self._loop is None:
            return

        async def shut():
            if self._listener is not None:
                self._listener.close()
            if self._shell is not None:
                await self._shell.close()

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(15)
        except Exception:  # closing is best effort: the connection dies with the process anyway
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop = None

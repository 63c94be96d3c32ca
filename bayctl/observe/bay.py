"""Merge the flow streams of every slave of a bay, over the bay's SSH connections.

One long-lived SSH connection per slave (bayctl.remote.BayShell: the bay's key and
known_hosts, slaves through the master) runs bayctl/observe/node.py, which follows that
slave's agent and prints JSON lines. Flows are handed on as they arrive, each named by its
slave. A slave whose stream ends (agent restarted, SSH dropped) is named and re-joined; on
re-joining it replays its agent's history from the last flow seen, so nothing in between is
lost or shown twice. Closing (Ctrl-C) closes every stdin: the node sides end themselves.
"""

import asyncio
import json
import shlex
from typing import Callable, Optional

import asyncssh

from bayctl.errors import BayctlError, NodeError
from bayctl.providers.base import SLAVE
from bayctl.remote import BayShell

# Like bayctl.verify.run's helper: the Python that has bayctl on the node (the `bayctl`
# script's shebang on a node image, else python3).
NODE_PYTHON = ("py=$(sed -n \"1s/^#!\\(\\/[^ ]*\\)$/\\1/p\" \"$(command -v bayctl)\" 2>/dev/null); "
               "[ -x \"$py\" ] || py=python3; ")
REJOIN_DELAYS = (0.5, 1, 2, 5)   # seconds before each re-join attempt; the last repeats


def node_command(ssh_user, verdict=None, src=None, dst=None, since=None, follow=True):
    args = []
    for flag, value in (("--verdict", verdict), ("--from", src), ("--to", dst)):
        if value is not None:
            args += [flag, value]
    if since is not None:
        args += ["--since", repr(float(since))]
    if not follow:
        args.append("--no-follow")
    script = NODE_PYTHON + 'exec "$py" -m bayctl.observe.node ' + shlex.join(args)
    command = f"sh -c {shlex.quote(script)}"
    return command if ssh_user == "root" else f"sudo -n {command}"


class BayObserver:
    """Follow (or read the history of) every slave. on_flow(flow) for each flow, on_note(text)
    for a slave that dropped out, re-joined or failed."""

    def __init__(self, nodes, *, bay_state_dir, ssh_user, ssh_key, on_flow: Callable,
                 on_note: Callable, verdict=None, src=None, dst=None, since: Optional[float] = None):
        self.nodes = list(nodes)
        self.slaves = [node for node in self.nodes if node.role == SLAVE]
        if not self.slaves:
            raise BayctlError("the bay has no slaves to observe")
        self.shell_options = dict(bay_state_dir=bay_state_dir, ssh_user=ssh_user, ssh_key=ssh_key)
        self.ssh_user = ssh_user
        self.on_flow, self.on_note = on_flow, on_note
        self.filters = dict(verdict=verdict, src=src, dst=dst)
        self.since = since

    async def history(self):
        """Every slave's matching history, merged in time order (then returns)."""
        async with BayShell(self.nodes, **self.shell_options) as shell:
            results = await asyncio.gather(*(self._history_of(shell, node) for node in self.slaves),
                                           return_exceptions=True)
        merged = []
        for node, result in zip(self.slaves, results):
            if isinstance(result, Exception):
                self.on_note(f"{node.name}: {result}")
            else:
                merged += result
        for flow in sorted(merged, key=lambda flow: flow["epoch"]):
            self.on_flow(flow)
        return merged

    async def _history_of(self, shell, node):
        done = await shell.run(node.name, node_command(self.ssh_user, since=self.since, follow=False,
                                                       **self.filters))
        flows = [_parse(node.name, text) for text in done.stdout.splitlines() if text.strip()]
        return [_named(flow, node.name) for flow in flows]

    async def follow(self, stop: asyncio.Event):
        """Stream every slave's flows until `stop` is set."""
        async with BayShell(self.nodes, **self.shell_options) as shell:
            tasks = [asyncio.create_task(self._follow_slave(shell, node, stop)) for node in self.slaves]
            try:
                await stop.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow_slave(self, shell, node, stop):
        last_epoch, attempt = self.since, 0
        while not stop.is_set():
            process = None
            try:
                process = await shell.start(node.name, node_command(self.ssh_user, since=last_epoch,
                                                                    **self.filters))
                if attempt:
                    self.on_note(f"{node.name}: re-joined")
                async for text in process.stdout:
                    if not text.strip():
                        continue
                    flow = _parse(node.name, text)
                    attempt = 0
                    if last_epoch is not None and flow["epoch"] <= last_epoch:
                        continue  # replayed history already shown before the drop-out
                    last_epoch = flow["epoch"]
                    self.on_flow(_named(flow, node.name))
                reason = "its stream ended"
                errors = (await process.stderr.read()).strip().splitlines()
                if errors:
                    reason += f": {errors[-1]}"
            except asyncio.CancelledError:
                raise
            except (NodeError, OSError, asyncssh.Error) as exc:
                reason = str(exc).removeprefix(f"{node.name}: ")
            finally:
                if process is not None:
                    process.stdin.write_eof()
                    process.close()
            if stop.is_set():
                return
            delay = REJOIN_DELAYS[min(attempt, len(REJOIN_DELAYS) - 1)]
            self.on_note(f"{node.name}: dropped out ({reason}); re-joining in {delay:g}s")
            await shell.disconnect(node.name)  # the next start() reconnects
            attempt += 1
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass


def _parse(node_name, text):
    try:
        document = json.loads(text)
    except ValueError:
        raise NodeError(f"{node_name}: observe helper printed {text.strip()[:80]!r}, not JSON") from None
    if "error" in document:
        raise NodeError(f"{node_name}: {document['error']}")
    return document


def _named(flow, node_name):
    """The bay's name for the node (an agent knows only its hostname)."""
    flow["node"] = node_name
    return flow


def observed_flows(bay, since, on_note=None):
    """Every slave's flows since `since` (epoch seconds), merged in time order: for a picture
    of recent traffic (bayctl verify --html --flows)."""
    flows = []
    observer = BayObserver(bay.nodes, bay_state_dir=bay.state.directory, ssh_user=bay.ssh_user,
                           ssh_key=bay.ssh_key, on_flow=flows.append, on_note=on_note or (lambda _: None),
                           since=since)
    asyncio.run(observer.history())
    return flows

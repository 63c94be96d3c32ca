"""The zookeeper backend: write the policy once to the bay's ZooKeeper, wait for the agents.

bayctl is the only writer (digest ACL `bayctl`); agents authenticate as `agent` and may only
read the policy and create or delete their own reports. The two secrets are made at create
time, kept in the bay's state dir (0600, `zookeeper.json`) and never printed; the agents' is
seeded to every slave once over SSH (see setup.py). The znode layout is bayctl.node.zkwatch's.
"""

import json
import logging
import os
import secrets
import threading
import time
from typing import Dict, List, Optional, Sequence

from bayctl.errors import SeedError
from bayctl.node.zkwatch import DIGEST_SCHEME, history_path, nodes_path, policy_path, report_path

# kazoo says every connect and close at INFO: noise in bayctl's output (its warnings still show).
logging.getLogger("kazoo").setLevel(logging.WARNING)

STATE_FILE = "zookeeper.json"
BAYCTL_USER = "bayctl"
AGENT_USER = "agent"
HISTORY_KEPT = 100          # versions kept under <root>/history (older ones are pruned)
CONNECT_TIMEOUT = 15.0
OWN_SERVER_ZNODES = ("/", "/zookeeper", "/zookeeper/quota")   # world:anyone ALL out of the box


class Credentials:
    """Where the bay's ZooKeeper is and the two digest secrets (state dir, 0600)."""

    def __init__(self, hosts: str, root: str, bayctl_secret: str, agent_secret: str, owns_root: bool,
                 tunnel: bool = False):
        self.hosts, self.root = hosts, root
        self.bayctl_secret, self.agent_secret = bayctl_secret, agent_secret
        self.owns_root = owns_root   # the server is bayctl's alone (local bay): lock "/" too
        self.tunnel = tunnel         # `hosts` is reached through the master's SSH (tunnel.py)

    @classmethod
    def new(cls, hosts: str, bay: str, owns_root: bool, tunnel: bool = False) -> "Credentials":
        return cls(hosts, f"/bayctl/{bay}", secrets.token_urlsafe(24), secrets.token_urlsafe(24), owns_root,
                   tunnel)

    @classmethod
    def load(cls, bay_state_dir: str) -> Optional["Credentials"]:
        path = os.path.join(bay_state_dir, STATE_FILE)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            return cls(data["hosts"], data["root"], data["bayctl_secret"], data["agent_secret"],
                       bool(data.get("owns_root")), bool(data.get("tunnel")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError) as exc:
            raise SeedError(f"{path}: unreadable ZooKeeper credentials: {type(exc).__name__}") from None

    def save(self, bay_state_dir: str) -> None:
        from bayctl.atomicfile import write_atomically

        write_atomically(os.path.join(bay_state_dir, STATE_FILE), json.dumps({
            "hosts": self.hosts, "root": self.root, "bayctl_secret": self.bayctl_secret,
            "agent_secret": self.agent_secret, "owns_root": self.owns_root, "tunnel": self.tunnel}) + "\n",
            mode=0o600)

    def agent_config(self, node: str, hosts: Optional[str] = None) -> dict:
        """What one slave's agent is given (bayctl.node.zkwatch.check_config)."""
        from kazoo.security import make_digest_acl_credential

        return {"hosts": hosts or self.hosts, "root": self.root, "node": node,
                "auth": f"{AGENT_USER}:{self.agent_secret}",
                "owner": make_digest_acl_credential(BAYCTL_USER, self.bayctl_secret)}


def connect(creds: Credentials, timeout: float = CONNECT_TIMEOUT, via: Optional[dict] = None):
    """A started kazoo client authenticated as bayctl; SeedError naming the hosts if none answers.
    `via` (nodes, bay_state_dir, ssh_user, ssh_key): how to reach a tunnelled ZooKeeper.
    Give it back with disconnect()."""
    from kazoo.client import KazooClient
    from kazoo.handlers.threading import KazooTimeoutError

    hosts, tunnel = creds.hosts, None
    if creds.tunnel:
        from bayctl.distribution.tunnel import Tunnel

        if via is None:
            raise SeedError(f"the bay's ZooKeeper ({creds.hosts}) is reached through its master: "
                            "the bay's nodes and SSH key are needed")
        options = dict(via)
        tunnel = Tunnel(options.pop("nodes"), creds.hosts, **options)
        hosts = tunnel.open()
    auth = [(DIGEST_SCHEME, f"{BAYCTL_USER}:{creds.bayctl_secret}")]
    client = KazooClient(hosts=hosts, auth_data=auth, timeout=10.0)
    client.bayctl_tunnel = tunnel
    try:
        client.start(timeout=timeout)
    except KazooTimeoutError:
        disconnect(client)
        way = " through the master's SSH" if tunnel else ""
        raise SeedError(f"the bay's ZooKeeper ({creds.hosts}{way}) did not answer within "
                        f"{timeout:g}s") from None
    return client


def disconnect(client) -> None:
    client.stop()
    client.close()
    tunnel = getattr(client, "bayctl_tunnel", None)
    if tunnel is not None:
        tunnel.close()


def acls(creds: Credentials):
    """(read-only for agents, reports parent) ACL lists; nothing for `world` at all."""
    from kazoo.security import make_digest_acl

    owner = make_digest_acl(BAYCTL_USER, creds.bayctl_secret, all=True)
    reader = make_digest_acl(AGENT_USER, creds.agent_secret, read=True)
    reporter = make_digest_acl(AGENT_USER, creds.agent_secret, read=True, create=True, delete=True)
    return [owner, reader], [owner, reporter]


def prepare(client, creds: Credentials) -> None:
    """The bay's znodes with their ACLs (idempotent). On a server bayctl owns, "/" and
    ZooKeeper's own /zookeeper and /zookeeper/quota as well: their default ACL is world:anyone ALL."""
    read_only, reports = acls(creds)
    if creds.owns_root:
        for path in OWN_SERVER_ZNODES:
            client.set_acls(path, read_only)
    path = ""
    for part in creds.root.strip("/").split("/"):
        path += "/" + part
        _ensure(client, path, read_only)
    _ensure(client, history_path(creds.root), read_only)
    _ensure(client, nodes_path(creds.root), reports)


def _ensure(client, path, acl):
    from kazoo.exceptions import NodeExistsError

    try:
        client.create(path, b"", acl=acl)
    except NodeExistsError:
        client.set_acls(path, acl)


def current(client, creds: Credentials) -> Optional[dict]:
    from kazoo.exceptions import NoNodeError

    try:
        data, _ = client.get(policy_path(creds.root))
    except NoNodeError:
        return None
    return json.loads(data) if data else None


def reports(client, creds: Credentials, nodes: Sequence[str]) -> Dict[str, Optional[dict]]:
    """node -> its live agent's report (what it enforces, the version it dealt with), or None
    where no agent of that node is connected."""
    from kazoo.exceptions import NoNodeError

    asked = {node: client.get_async(report_path(creds.root, node)) for node in nodes}
    out: Dict[str, Optional[dict]] = {}
    for node, answer in asked.items():
        try:
            data, _ = answer.get(timeout=CONNECT_TIMEOUT)
            out[node] = json.loads(data)
        except NoNodeError:
            out[node] = None
        except ValueError:
            out[node] = {}   # unreadable: it certainly does not report the digest
    return out


def wait_for_agents(client, creds: Credentials, nodes: Sequence[str], timeout: float) -> List[str]:
    """Until every node's agent is connected (its report exists: an agent reports as soon as it
    has read the policy znode, even when none is there yet); returns those that did not."""
    deadline = time.monotonic() + timeout
    while True:
        absent = sorted(node for node, report in reports(client, creds, nodes).items() if report is None)
        if not absent or time.monotonic() >= deadline:
            return absent
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def publish(client, creds: Credentials, text: str, digest: str, source: str, again: bool = False) -> dict:
    """Write a new version (history first, then the policy znode agents watch); returns it.
    The same digest as the current version writes nothing (as seeding leaves a node alone),
    unless `again`: some node enforces another policy (changed behind bayctl's back), and a
    new version of the same policy makes every agent look again (those holding it do nothing)."""
    held = current(client, creds)
    repeated = held is not None and held.get("digest") == digest
    if repeated and not again:
        return dict(held, unchanged=True)
    read_only, _ = acls(creds)
    record = {"digest": digest, "source": source, "time": time.time(), "text": text}
    created = client.create(history_path(creds.root) + "/v", json.dumps(record).encode(), acl=read_only,
                            sequence=True)
    record["version"] = int(created.rsplit("/v", 1)[1])
    client.set(created, json.dumps(record).encode())
    body = json.dumps(record).encode()
    if held is None:
        from kazoo.exceptions import NodeExistsError

        try:
            client.create(policy_path(creds.root), body, acl=read_only)
        except NodeExistsError:
            client.set(policy_path(creds.root), body)
    else:
        client.set(policy_path(creds.root), body)
    _prune(client, creds)
    return dict(record, repeated=True) if repeated else record


def _prune(client, creds):
    versions = sorted(client.get_children(history_path(creds.root)))
    for name in versions[:-HISTORY_KEPT]:
        client.delete(f"{history_path(creds.root)}/{name}")


def history(client, creds: Credentials) -> List[dict]:
    """Every kept version, oldest first, without the policy text."""
    out = []
    for name in sorted(client.get_children(history_path(creds.root))):
        data, _ = client.get(f"{history_path(creds.root)}/{name}")
        record = json.loads(data)
        record.pop("text", None)
        out.append(record)
    return out


def wait_for_reports(client, creds: Credentials, nodes: Sequence[str], digest: str, timeout: float,
                     progress=None, version: Optional[int] = None) -> Dict[str, dict]:
    """Until every node in `nodes` reports `digest`, or refuses it, or `timeout` passes.
    Returns node -> {"ok", "digest", "reason"}; a report arriving wakes the loop (a watch).
    `version`: only a refusal of that version counts (an older refusal of the same digest
    is what a new version is retried for)."""
    wake = threading.Event()
    pending = set(nodes)
    outcome: Dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    last_seen: Dict[str, Optional[dict]] = {}

    def watcher(_event):
        wake.set()

    client.get_children(nodes_path(creds.root), watch=watcher)
    while pending:
        wake.clear()
        asked = {node: client.get_async(report_path(creds.root, node), watch=watcher) for node in pending}
        for node, answer in asked.items():
            try:
                data, _ = answer.get(timeout=CONNECT_TIMEOUT)
                report = json.loads(data)
            except Exception:  # NoNodeError: no live agent there (yet): its watch wakes us
                last_seen[node] = None
                client.exists_async(report_path(creds.root, node), watch=watcher)
                continue
            last_seen[node] = report
            if report.get("digest") == digest:
                outcome[node] = {"ok": True, "digest": digest, "reason": ""}
            elif (report.get("wanted") == digest and report.get("error")
                  and (version is None or report.get("version") == version)):
                outcome[node] = {"ok": False, "digest": report.get("digest"),
                                 "reason": f"its agent refused the policy: {report['error']}"}
            else:
                continue
            pending.discard(node)
            if progress:
                progress(node, outcome[node])
        if not pending:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        wake.wait(min(remaining, 1.0))
    for node in sorted(pending):
        report = last_seen.get(node)
        if report is None:
            reason = ("no report: its agent is not connected to the bay's ZooKeeper "
                      f"(down, or never given it) after {timeout:g}s")
        else:
            reason = (f"still reports {(report.get('digest') or 'no policy')[:12]} after {timeout:g}s")
        outcome[node] = {"ok": False, "digest": report.get("digest") if report else None, "reason": reason}
    return outcome

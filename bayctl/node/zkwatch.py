"""The agent's side of policy distribution through the bay's ZooKeeper.

The bay's policy lives in one znode; every slave's agent watches it, validates a new version,
swaps it in through the agent's own apply path (the same one `PUT /v1/policy` takes: parse,
compile, one atomic swap in the datapath, saved only after the datapath took it) and reports
what it holds under an ephemeral znode of its own. bayctl waits for those reports.

    <root>                    e.g. /bayctl/<bay>
    <root>/policy             the current version: JSON {version, digest, source, time, text}
    <root>/history/v<seq>     every version ever written (persistent, sequential)
    <root>/nodes/<node>       ephemeral, one per live agent: JSON {digest, version, error, time}

ZooKeeper unreachable changes nothing on the node: the agent keeps enforcing its last policy
(kept on disk by the agent) and kazoo reconnects on its own; a new session re-reads the
policy and re-creates the report. Credentials (digest scheme) come from the agent's state dir
(`zookeeper.json`, 0600), seeded once over SSH when the bay is created; they are never logged.

Runs on a slave: kazoo is its only dependency beyond the agent's own.
"""

import json
import logging
import os
import queue
import threading
import time

from bayctl.atomicfile import write_atomically
from bayctl.errors import NodeError, PolicyError

LOG = logging.getLogger("bayctl.node.zkwatch")

CONFIG_FILE = "zookeeper.json"
SEEN_FILE = "zookeeper-seen.json"   # the last version this node dealt with (taken or refused)
CONFIG_FIELDS = ("hosts", "root", "node", "auth", "owner")
POLICY_ZNODE = "policy"
HISTORY_ZNODE = "history"
NODES_ZNODE = "nodes"
DIGEST_SCHEME = "digest"
REPORT_WAIT = 5.0   # seconds a change by another way waits for this node's report to be written


def policy_path(root):
    return f"{root.rstrip('/')}/{POLICY_ZNODE}"


def history_path(root):
    return f"{root.rstrip('/')}/{HISTORY_ZNODE}"


def nodes_path(root):
    return f"{root.rstrip('/')}/{NODES_ZNODE}"


def report_path(root, node):
    return f"{nodes_path(root)}/{node}"


# -- the agent's configuration ------------------------------------------------------------------


def check_config(config):
    """The watcher's configuration, checked: {"hosts", "root", "node", "auth": "user:secret",
    "owner": "user:hash"} (`owner`: bayctl's digest id, given ALL on the node's report: ZooKeeper
    masks digest ids in the ACLs it shows, so the agent cannot copy them from the parent).
    Raises ValueError naming the bad field (never its value: `auth` is a secret)."""
    if not isinstance(config, dict):
        raise ValueError('expected a JSON object {"hosts", "root", "node", "auth"}')
    unknown = sorted(set(config) - set(CONFIG_FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    for field in CONFIG_FIELDS:
        value = config.get(field)
        if not isinstance(value, str) or not value or not value.isprintable():
            raise ValueError(f"field '{field}' is required (a non-empty string)")
    if not config["root"].startswith("/") or config["root"].endswith("/"):
        raise ValueError("field 'root' must be an absolute znode path like /bayctl/demo")
    if "/" in config["node"]:
        raise ValueError("field 'node' must be a node name, not a path")
    for field in ("auth", "owner"):
        if ":" not in config[field]:
            raise ValueError(f"field '{field}' must be user:secret (auth) or user:hash (owner)")
    return {field: config[field] for field in CONFIG_FIELDS}


def load_config(state_dir):
    """The saved configuration, or None when the node was never given one."""
    path = os.path.join(state_dir, CONFIG_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            return check_config(json.load(handle))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NodeError(f"{path}: {exc}") from None


def save_config(state_dir, config):
    write_atomically(os.path.join(state_dir, CONFIG_FILE), json.dumps(config) + "\n", mode=0o600)


# -- the watcher -------------------------------------------------------------------------------


class PolicyWatcher:
    """Watches the bay's policy znode for one agent (anything with apply_policy and health).

    All work happens on one thread of its own, fed by ZooKeeper's callbacks: a new policy
    version, or a (re)connection that needs the report re-made. Nothing here blocks the agent's
    API, and nothing here ever clears the agent's policy.
    """

    def __init__(self, agent, config, *, state_dir=None, client_factory=None):
        self.agent = agent
        self.state_dir = state_dir
        self.config = check_config(config)
        self.root, self.node = self.config["root"], self.config["node"]
        self._events = queue.Queue()
        self._client_factory = client_factory
        self._client = None
        self._thread = None
        self._stopped = threading.Event()
        self._last = {"version": None, "wanted": None, "error": None}
        self._seen = self._load_seen()

    # -- life cycle ------------------------------------------------------------------------------

    def start(self):
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        user, _, secret = self.config["auth"].partition(":")
        factory = self._client_factory or KazooClient
        self._client = factory(
            hosts=self.config["hosts"],
            auth_data=[(DIGEST_SCHEME, f"{user}:{secret}")],
            # Forever: a ZooKeeper that is down for an hour is waited for, not given up on.
            connection_retry=KazooRetry(max_tries=-1, max_delay=5),
            timeout=10.0,
        )
        self._client.add_listener(self._on_state)
        self._thread = threading.Thread(target=self._run, name="zkwatch", daemon=True)
        self._thread.start()
        self.agent.policy_listeners.append(self._on_policy_changed)
        # start_async: the agent serves its API (and enforces its saved policy) at once,
        # whether or not ZooKeeper answers.
        self._client.start_async()
        self._events.put(("connect", None))
        LOG.info("watching %s on %s as %s", policy_path(self.root), self.config["hosts"], self.node)

    def stop(self):
        self._stopped.set()
        if self._on_policy_changed in self.agent.policy_listeners:
            self.agent.policy_listeners.remove(self._on_policy_changed)
        self._events.put(("stop", None))
        if self._client is not None:
            try:
                self._client.stop()
                self._client.close()
            except Exception as exc:  # stopping must never fail the agent's own stop
                LOG.warning("closing the ZooKeeper client: %s", exc)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def status(self):
        client = self._client
        return {
            "hosts": self.config["hosts"], "root": self.root, "node": self.node,
            "connected": bool(client and client.connected),
            "version": self._last["version"], "error": self._last["error"],
        }

    # -- ZooKeeper's callbacks (kazoo's event thread: hand over, never block) ---------------------

    def _on_state(self, state):
        from kazoo.client import KazooState

        if self._stopped.is_set():
            return  # our own stop closes the session: nothing to say
        if state == KazooState.CONNECTED:
            self._events.put(("connect", None))
        elif state == KazooState.LOST:
            LOG.warning("ZooKeeper session lost: keeping the current policy, reconnecting")
        elif state == KazooState.SUSPENDED:
            LOG.warning("ZooKeeper unreachable: keeping the current policy")

    def _on_policy(self, data, stat, *_):
        self._events.put(("policy", data))

    # -- the agent's callback: its active policy changed, whichever way ---------------------------

    def _on_policy_changed(self):
        """The node's policy changed by another way than this watch (`PUT /v1/policy`, SSH
        seeding, `bayctl node apply`, a promotion): re-report, so bayctl sees what the node
        really enforces and a re-apply puts it back. Waits (briefly) for the report to be
        written, so the agent's answer to the change comes after its report; never when
        ZooKeeper is away (the report is re-made on reconnection anyway)."""
        if threading.current_thread() is self._thread:
            return  # our own apply (_take): the worker reports right after it
        done = threading.Event()
        self._events.put(("changed", done))
        if self._client is not None and self._client.connected:
            done.wait(REPORT_WAIT)

    # -- the worker thread ---------------------------------------------------------------------

    def _run(self):
        watching = False
        while not self._stopped.is_set():
            kind, data = self._events.get()
            if kind == "stop":
                return
            try:
                if kind == "connect":
                    if not self._client.connected:
                        continue  # start_async still connecting: its CONNECTED comes later
                    if not watching:
                        from kazoo.recipe.watchers import DataWatch

                        # DataWatch re-reads after every reconnection and new session itself;
                        # its first reading is queued, and reported once it is dealt with (a
                        # report before it would show a state the node is about to leave).
                        DataWatch(self._client, policy_path(self.root), self._on_policy)
                        watching = True
                    else:
                        self._report()
                elif kind == "policy":
                    self._take(data)
                    self._report()
                elif kind == "changed":
                    if watching and self._client.connected:
                        self._report()
            except Exception as exc:  # ZooKeeper gone mid-call: the next CONNECTED retries
                LOG.warning("ZooKeeper: %s: %s (retried on reconnection)", kind, _reason(exc))
            finally:
                if kind == "changed":
                    data.set()

    def _take(self, data):
        """Validate and apply one version (the agent's own apply path); remember the outcome."""
        if data is None:
            return  # no policy written yet: the node keeps what it has (fail closed if nothing)
        try:
            record = json.loads(data)
            version, wanted, text = int(record["version"]), str(record["digest"]), str(record["text"])
            source = f"zookeeper:{policy_path(self.root)}@{version} ({record.get('source') or '-'})"
        except (ValueError, KeyError, TypeError) as exc:
            self._last = {"version": None, "wanted": None, "error": f"unreadable policy record: {exc}"}
            LOG.error("policy record at %s unreadable: %s", policy_path(self.root), exc)
            return
        if version == self._seen:
            # Dealt with before this start (or session): the node may hold a newer policy since
            # (SSH seeding, the fallback, while ZooKeeper was down); a version it has seen must
            # not take it back. Only a new version changes the node.
            self._last = {"version": version, "wanted": wanted, "error": None}
            return
        try:
            result = self.agent.apply_policy(text, source=source, unless=frozenset({wanted}))
        except (PolicyError, NodeError) as exc:
            # Refused: the node keeps enforcing what it had, and says why in its report.
            self._last = {"version": version, "wanted": wanted, "error": str(exc)}
            LOG.error("policy version %d refused, keeping the current one: %s", version, exc)
            self._save_seen(version)
            return
        self._save_seen(version)
        error = None
        if result["digest"] != wanted:
            error = f"the policy's digest is {result['digest']}, its record says {wanted}"
        self._last = {"version": version, "wanted": wanted, "error": error}

    def _load_seen(self):
        if self.state_dir is None:
            return None
        try:
            with open(os.path.join(self.state_dir, SEEN_FILE), encoding="utf-8") as handle:
                seen = json.load(handle)
            return int(seen["version"]) if seen.get("root") == self.root else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            LOG.warning("%s unreadable (%s): the current version will be applied", SEEN_FILE, exc)
            return None

    def _save_seen(self, version):
        self._seen = version
        if self.state_dir is None:
            return
        try:
            write_atomically(os.path.join(self.state_dir, SEEN_FILE),
                             json.dumps({"root": self.root, "version": version}) + "\n")
        except OSError as exc:  # at worst a restart re-applies this version: logged, not fatal
            LOG.warning("cannot save %s: %s", SEEN_FILE, exc)

    def _report(self):
        """Create or update this node's ephemeral report (one per live session)."""
        from kazoo.exceptions import NodeExistsError, NoNodeError
        from kazoo.security import make_digest_acl

        client = self._client
        health = self.agent.health()
        body = json.dumps({"digest": health.get("digest"), "version": self._last["version"],
                           "wanted": self._last["wanted"], "error": self._last["error"],
                           "time": time.time()}).encode()
        path = report_path(self.root, self.node)
        try:
            _, stat = client.get(path)
            if stat.ephemeralOwner == client.client_id[0]:
                client.set(path, body)
                return
            client.delete(path)  # a previous session's report, not yet expired
        except NoNodeError:
            pass
        from kazoo.security import ACL, Id, Permissions

        user, _, secret = self.config["auth"].partition(":")
        acl = [make_digest_acl(user, secret, all=True),
               ACL(Permissions.ALL, Id(DIGEST_SCHEME, self.config["owner"]))]
        try:
            client.create(path, body, acl=acl, ephemeral=True)
        except NodeExistsError:
            client.set(path, body)


def _reason(exc):
    return f"{type(exc).__name__}{': ' + str(exc) if str(exc) else ''}"


class Distribution:
    """The agent's one watcher slot: the saved configuration started at boot, replaced by
    `PUT /v1/distribution` (saved first, so a restart resumes watching)."""

    def __init__(self, agent, state_dir):
        self.agent, self.state_dir = agent, state_dir
        self.watcher = None
        self._lock = threading.Lock()

    def start_saved(self):
        try:
            config = load_config(self.state_dir)
        except NodeError as exc:
            LOG.error("not watching ZooKeeper: %s", exc)   # the agent runs on, SSH still reaches it
            return
        if config is not None:
            self._replace(config)

    def put(self, config):
        config = check_config(config)     # ValueError: the API answers 400, nothing changed
        with self._lock:
            save_config(self.state_dir, config)
            self._replace(config)
        return self.show()

    def forget(self):
        """Stop watching and remove the saved configuration (the bay went back to SSH
        seeding): no secret is kept, no restart watches again. The held policy stays."""
        with self._lock:
            self.stop()
            try:
                os.unlink(os.path.join(self.state_dir, CONFIG_FILE))
            except FileNotFoundError:
                pass
        return self.show()

    def show(self):
        watcher = self.watcher
        return watcher.status() if watcher else {"hosts": None}

    def stop(self):
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def _replace(self, config):
        self.stop()
        self.watcher = PolicyWatcher(self.agent, config, state_dir=self.state_dir)
        self.watcher.start()

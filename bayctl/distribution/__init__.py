"""How a policy reaches a bay's slaves: one entry point, two backends.

    from bayctl.distribution import put_policy
    results = put_policy(state, nodes, "web-db.yaml", ssh_user=..., ssh_key=...)

- ``zookeeper`` (the default where the bay has one): the policy is written once, as a new
  version, to the bay's ZooKeeper; every slave's agent watches it, applies it through its own
  apply path and reports its digest; bayctl waits for every slave's report (zookeeper.py,
  the agent's side in bayctl.node.zkwatch).
- ``ssh``: pushed to every slave over SSH through the master, read back (bayctl.seed). The
  bootstrap path (the agents' ZooKeeper secret itself travels this way, bootstrap.py) and the
  fallback for bays without a ZooKeeper.

Either way the result is one NodeResult per slave, and a SeedError names every slave that did
not take the policy: `bayctl policy apply` means the same whichever way the policy travelled.
"""

import logging
import os
import time
from typing import Optional

from bayctl import history
from bayctl.errors import SeedError
from bayctl.providers.base import SLAVE

LOG = logging.getLogger(__name__)

SSH, ZOOKEEPER = "ssh", "zookeeper"
MODES = (SSH, ZOOKEEPER)
STATE_KEY = "distribution"          # state.extra[STATE_KEY]: the bay's default mode
REPORT_TIMEOUT = 90.0               # as long as one node's SSH seeding may take


def bay_mode(state) -> str:
    """The bay's distribution: what create set up (zookeeper where it has one), else ssh."""
    from bayctl.distribution.zookeeper import Credentials

    mode = state.extra.get(STATE_KEY)
    if mode in MODES:
        return mode
    return ZOOKEEPER if Credentials.load(state.directory) is not None else SSH


def put_policy(state, nodes, policy_path, *, ssh_user, ssh_key, status=None,
               distribution: Optional[str] = None, timeout: float = REPORT_TIMEOUT,
               text: Optional[str] = None, action: str = history.APPLY, source: Optional[str] = None,
               **seed_options):
    """Put the policy at `policy_path` (or `text`, named `policy_path`: a rollback's or a
    promotion's) on every slave of the bay; per-slave NodeResults. `seed_options` go to SSH
    seeding as they are. Raises PolicyError before anything is sent, SeedError naming each
    slave that failed."""
    mode = distribution or bay_mode(state)
    if mode not in MODES:
        raise SeedError(f"unknown distribution {mode!r} (one of {', '.join(MODES)})")
    policy, policy_text = _read(policy_path, text)   # PolicyError: nothing sent anywhere
    via = _via(state, nodes, ssh_user, ssh_key)
    if mode == SSH:
        from bayctl.create.seeding import seed_bay

        _record_in_zookeeper(state, policy_path, policy, policy_text, via)
        if text is not None:
            seed_options["text"] = text   # a text, not the file: SSH seeding sends it as it is
        return seed_bay(state, nodes, policy_path, ssh_user=ssh_user, ssh_key=ssh_key, status=status,
                        action=action, source=source, **seed_options)
    previous = state.policy_digest
    results = _through_zookeeper(state, nodes, policy_path, policy, policy_text, status=status,
                                 timeout=timeout, via=via)   # SeedError: not every slave took it
    history.record_if_taken(state.directory, policy_text, policy.digest, previous,
                            source or state.policy_path, action)
    return results


def _read(policy_path, text):
    from bayctl.policy import load_policy, parse_policy

    if text is not None:
        return parse_policy(text, source=policy_path), text
    policy = load_policy(policy_path)
    with open(policy_path, encoding="utf-8") as handle:
        return policy, handle.read()


def _via(state, nodes, ssh_user, ssh_key):
    """How bayctl reaches a ZooKeeper behind the master (zookeeper.connect's `via`)."""
    return dict(nodes=nodes, bay_state_dir=state.directory, ssh_user=ssh_user, ssh_key=ssh_key)


def _record_in_zookeeper(state, policy_path, policy, text, via):
    """A bay with a ZooKeeper seeded over SSH (the fallback): the new version is written there
    too, so an agent that reconnects later does not go back to an older one. A ZooKeeper that
    does not answer is why SSH was chosen: that is a warning, never the end of the apply."""
    from bayctl.distribution import zookeeper

    creds = zookeeper.Credentials.load(state.directory)
    if creds is None:
        return
    try:
        client = zookeeper.connect(creds, timeout=5.0, via=via)
    except SeedError as exc:
        LOG.warning("%s: the new version is not recorded there (agents keep it from SSH)", exc)
        return
    try:
        zookeeper.publish(client, creds, text, policy.digest, os.path.abspath(policy_path))
    finally:
        zookeeper.disconnect(client)


def _through_zookeeper(state, nodes, policy_path, policy, text, *, status, timeout, via):
    from bayctl.distribution import zookeeper
    from bayctl.seed.runner import FAILED, SEEDED, UNCHANGED, NodeResult

    creds = zookeeper.Credentials.load(state.directory)
    if creds is None:
        raise SeedError(f"bay {state.name} has no ZooKeeper set up: use --distribution ssh")
    slaves = [node.name for node in nodes if node.role == SLAVE]
    started = time.monotonic()
    client = zookeeper.connect(creds, via=via)
    try:
        # What every live agent enforces now: one that differs (changed behind bayctl's back,
        # or it refused an earlier version of this policy) gets a new version of it, even
        # when the bay already holds it; those already holding it are left alone.
        before = zookeeper.reports(client, creds, slaves)
        drifted = [node for node, report in before.items()
                   if report is not None and report.get("digest") != policy.digest]
        record = zookeeper.publish(client, creds, text, policy.digest, os.path.abspath(policy_path),
                                   again=bool(drifted))
        if record.get("repeated") and status is not None:
            status.update(f"the bay holds this policy, but {', '.join(drifted)} enforce(s) another: "
                          f"announced it again as version {record['version']}")
        done = []

        def progress(node, outcome):
            done.append(node)
            if status is not None:
                status.update(f"{node}: {'reports' if outcome['ok'] else 'failed'}", len(done), len(slaves))

        outcomes = zookeeper.wait_for_reports(client, creds, slaves, policy.digest, timeout, progress,
                                              version=record["version"])
    finally:
        zookeeper.disconnect(client)
    seconds = round(time.monotonic() - started, 3)

    def ok_status(node):   # as seeding says it: unchanged where the node held it already
        held = before.get(node)
        return UNCHANGED if held is not None and held.get("digest") == policy.digest else SEEDED

    results = [NodeResult(node, ok_status(node) if outcomes[node]["ok"] else FAILED, outcomes[node]["reason"],
                          digest=outcomes[node]["digest"], address=f"zookeeper {creds.hosts}",
                          seconds=seconds)
               for node in slaves]
    state.last_seed = [{"node": r.node, "status": r.status, "reason": r.reason} for r in results]
    state.extra["zookeeper_version"] = record["version"]
    failed = [r for r in results if not r.ok]
    if not failed:
        state.policy_digest = policy.digest
        state.policy_path = os.path.abspath(policy_path)
    state.save()
    if failed:
        named = "; ".join(f"{r.node}: {r.reason}" for r in failed)
        raise SeedError(f"policy version {record['version']} not taken by {len(failed)} of {len(results)} "
                        f"slaves ({named})", results=results)
    return results

"""A bay's policy beyond `apply`: what it holds, its history, rollback.

Every function takes the bay's name, as bayctl.api's verbs do; re-seeding goes through
bayctl.distribution.put_policy (the one way a policy is put on a bay, with its guarantees:
every slave applies it unless it holds it, its digest is read back, a failed node is named)
and is recorded in the bay's history there.
"""

from typing import List, Optional

from bayctl import history
from bayctl.create.state import bay_lock
from bayctl.distribution import put_policy
from bayctl.policy import parse_policy


def held_policy(name: str):
    """The Policy the bay was last seeded with, or None (its slaves deny all)."""
    from bayctl.api import get_bay

    state = get_bay(name).state
    text = history.held_text(state.directory, state.policy_digest, state.policy_path)
    if text is None:
        return None
    return parse_policy(text, source=f"bay {name} ({state.policy_digest[:12]})")


def policy_history(name: str) -> List[history.Record]:
    """The bay's kept apply records, newest first."""
    from bayctl.api import get_bay

    return list(reversed(history.records(get_bay(name).state.directory)))


def rollback_policy(name: str, digest: Optional[str] = None, *, status=None):
    """Re-seed a policy of the bay's history on every slave: `digest` (a prefix will do), or the
    newest one before the current. Returns the per-node results (SeedError names failures)."""
    from bayctl.api import get_bay

    bay = get_bay(name)
    with bay_lock(name):
        record, text = history.find(bay.state.directory, digest, bay.state.policy_digest)
        kept = history.policy_file(bay.state.directory, record.digest)
        return put_policy(bay.state, bay.nodes, kept, ssh_user=bay.ssh_user, ssh_key=bay.ssh_key,
                          status=status, text=text, action=history.ROLLBACK, source=record.source)


# -- audit mode on a bay: stage, show, promote, discard ----------------------------------------
#
# Staging reaches every slave's agent as seeding does (the bay's SSH path, curl on the agent's
# socket, every slave at once, a failed slave named and the others done) with the staged
# endpoints of the agent API; promotion IS seeding (put_policy with the staged text: the same
# swap on every slave, the read-back, the history record), after which the agents hold it as
# their active policy and the staging ends.

STAGED_FILE = "staged.yaml"          # in the bay's state dir: the text staged on its slaves
STAGED, DISCARDED = "staged", "discarded"
_STAGED_PATH = "/v1/policy/staged"


def stage_policy(name: str, policy_file: str, *, status=None):
    """Stage a policy (a file or an example's name) beside the active one on every slave."""
    import os
    import time

    from bayctl.api import get_bay
    from bayctl.atomicfile import write_atomically
    from bayctl.policy import load_policy
    from bayctl.share import policy_path

    path = os.path.abspath(policy_path(policy_file))
    policy = load_policy(path)                      # a bad policy stops here, before any contact
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    bay = get_bay(name)
    with bay_lock(name):
        state = bay.state
        # Unknown until every slave has it: a failed slave leaves the bay's staging unrecorded.
        state.extra.pop("staged", None)
        state.save()
        results = _on_slaves(bay, lambda agent: _curl(agent, [
            ("PUT", f"--data-binary @- -H 'Content-Type: application/yaml' "
                    f"-H {_quote('X-Bayctl-Source: ' + os.path.basename(path))}"),
            ("GET", "")]), text, lambda answers: _read_back(answers, policy.digest, STAGED), status)
        write_atomically(os.path.join(state.directory, STAGED_FILE), text)
        state.extra["staged"] = {"digest": policy.digest, "source": path, "time": time.time(),
                                 "who": history.who_applies()}
        state.save()
        return results


def staged_counts(name: str):
    """What the bay's staged policy would change: {"digest", "source", "who", "time", "nodes": [
    {"node", "digest", "active", "reason"}], "pairs": [...summed over slaves...]}."""
    from bayctl.api import get_bay

    bay = get_bay(name)
    answers = _gather(bay, lambda agent: _curl(agent, [("GET", "")]), None)
    recorded = bay.state.extra.get("staged") or {}
    nodes, pairs = [], {}
    for node, outcome in answers:
        if isinstance(outcome, Exception):
            nodes.append({"node": node, "digest": None, "active": None, "reason": str(outcome)})
            continue
        shown = outcome[0]
        here, there = (shown["digest"] or "nothing")[:12], (recorded.get("digest") or "nothing")[:12]
        reason = "" if shown["digest"] == recorded.get("digest") else f"stages {here}, the bay staged {there}"
        nodes.append({"node": node, "digest": shown["digest"], "active": shown["active"], "reason": reason})
        for pair in shown["pairs"]:
            key = (pair["from_tag"], pair["to_tag"])
            total = pairs.setdefault(key, {"from": pair["from"], "to": pair["to"], "from_tag": key[0],
                                           "to_tag": key[1]})
            for field, value in pair.items():
                if field.startswith("would_"):
                    total[field] = total.get(field, 0) + value
    return {**{k: recorded.get(k) for k in ("digest", "source", "who", "time")}, "nodes": nodes,
            "pairs": [pairs[key] for key in sorted(pairs)]}


def promote_staged(name: str, *, status=None):
    """Make the bay's staged policy active on every slave (seeding, with its guarantees)."""
    import os

    from bayctl.api import get_bay
    from bayctl.errors import BayctlError

    bay = get_bay(name)
    with bay_lock(name):
        staged = bay.state.extra.get("staged")
        if not staged:
            raise BayctlError(f"nothing staged on bay {name} "
                              f"(`bayctl policy apply FILE --bay {name} --audit` stages one)")
        with open(os.path.join(bay.state.directory, STAGED_FILE), encoding="utf-8") as handle:
            text = handle.read()
        results = put_policy(bay.state, bay.nodes, history.policy_file(bay.state.directory, staged["digest"]),
                             ssh_user=bay.ssh_user, ssh_key=bay.ssh_key, status=status, text=text,
                             action=history.PROMOTE, source=staged["source"])
        # An agent that already held the digest was left alone, its staging too: end it everywhere.
        _discard_on_slaves(bay, None)
        return results


def discard_staged(name: str, *, status=None):
    """Drop the staged policy on every slave (the active one is untouched)."""
    from bayctl.api import get_bay

    bay = get_bay(name)
    with bay_lock(name):
        return _discard_on_slaves(bay, status)


def _discard_on_slaves(bay, status):
    import os

    results = _on_slaves(bay, lambda agent: _curl(agent, [("DELETE", "")]), None,
                         lambda answers: _read_back(answers, None, DISCARDED), status)
    bay.state.extra.pop("staged", None)
    bay.state.save()
    try:
        os.unlink(os.path.join(bay.state.directory, STAGED_FILE))
    except FileNotFoundError:
        pass
    return results


def _quote(text):
    import shlex

    return shlex.quote(text)


def _curl(agent, requests):
    """ONE curl making `requests` ((method, extra options) on /v1/policy/staged) in turn, each
    answer followed by its status line; through sudo when the login is not root."""
    words = []
    for index, (method, extra) in enumerate(requests):
        words.append(("curl --fail-early" if index == 0 else "--next") +
                     f" -sS --max-time 20 --unix-socket {agent.socket_word()} -X {method} {extra}"
                     f" -w 'bayctl-http-status:%{{http_code}}\\n' http://agent{_STAGED_PATH}")
    return agent.as_root(" ".join(words).replace("  ", " "))


def _answers(agent, done):
    """The JSON bodies of a _curl command's answers; NodeError naming the first failure."""
    import json
    import re

    from bayctl.seed.remote import check_status

    agent.check_curl_exit(done.exit_status, done.stderr or "")
    parts = re.split(r"\n?bayctl-http-status:(\d{3})\n?", done.stdout or "")
    bodies = []
    for body, code in zip(parts[0::2], parts[1::2]):
        check_status(int(code), body)
        bodies.append(json.loads(body))
    return bodies


def _read_back(answers, wanted, done_status):
    from bayctl.errors import NodeError

    held = answers[-1].get("digest")
    if done_status == STAGED and held != wanted:
        raise NodeError(f"read-back: the agent stages {(held or 'nothing')[:12]}, not {wanted[:12]}")
    return done_status, wanted


def _gather(bay, command_for, stdin):
    """[(slave name, answers or the exception)] of one command on every slave at once."""
    import asyncio

    from bayctl.errors import NodeError
    from bayctl.providers.base import SLAVE
    from bayctl.remote import BayShell
    from bayctl.seed.remote import CurlAgent

    agent = CurlAgent(sudo=bay.ssh_user != "root")
    slaves = [node for node in bay.nodes if node.role == SLAVE]

    async def run_all():
        shell = BayShell(bay.nodes, bay_state_dir=bay.state.directory, ssh_user=bay.ssh_user,
                         ssh_key=bay.ssh_key)

        async def one(node):
            try:
                done = await shell.run(node.name, command_for(agent), input=stdin, timeout=60)
                return node.name, _answers(agent, done)
            except (NodeError, ValueError) as exc:
                return node.name, exc

        async with shell:
            return await asyncio.gather(*(one(node) for node in slaves))

    return asyncio.run(run_all())


def _on_slaves(bay, command_for, stdin, check, status):
    """Run a _curl command on every slave; per-node results as seeding gives them (SeedError
    naming every failed slave, the others done)."""
    from bayctl.errors import NodeError, SeedError
    from bayctl.seed.runner import FAILED, NodeResult

    results = []
    for node, outcome in _gather(bay, command_for, stdin):
        if not isinstance(outcome, Exception):
            try:
                done_status, digest = check(outcome)
                outcome = NodeResult(node, done_status, digest=digest)
            except NodeError as exc:
                outcome = exc
        if isinstance(outcome, Exception):
            outcome = NodeResult(node, FAILED, str(outcome))
        results.append(outcome)
        if status is not None:
            status.update(str(outcome), len(results), None)
    failed = [r for r in results if not r.ok]
    if failed:
        named = "; ".join(f"{r.node}: {r.reason}" for r in failed)
        raise SeedError(f"failed on {len(failed)} of {len(results)} slaves ({named})", results=results)
    return results

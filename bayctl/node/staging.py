"""Audit mode on one node: a staged policy evaluated beside the active one.

The datapath asks the staged policy every question it asks the active one and counts, per
group pair, the packets (and the flows they open) whose verdict it would change: would-drop
and would-allow (policy/lib/staged.h). The active policy keeps deciding every packet.

- stage: parse and compile (an invalid policy changes nothing), swap it into the staged slot
  with fresh counts, save it (restored at agent start, counts kept);
- promote: apply the staged text as the active policy, through Agent.apply_policy (the same
  atomic swap, save and undo as any apply); applying a policy whose digest is the staged one,
  whichever way it arrives, ends the staging;
- discard: empty the staged slot, forget it.
"""

import logging
import time

from bayctl.errors import NodeError, PolicyError
from bayctl.node.unixhttp import ApiError
from bayctl.policy import parse_and_pack

LOG = logging.getLogger("bayctl.node.agent")

AUDIT_FIELDS = ("would_drop_packets", "would_drop_bytes", "would_allow_packets", "would_allow_bytes",
                "would_drop_flows", "would_allow_flows")


class Staging:
    def __init__(self, agent):
        self.agent = agent
        self._policy = None
        self._staged = None         # {"text", "source", "since"} as saved

    @property
    def digest(self):
        return self._policy.digest if self._policy is not None else None

    def restore(self):
        """At agent start (lock held): stage the saved staged policy again, keeping the counts."""
        datapath, store = self.agent.datapath, self.agent.store
        try:
            staged = store.load_staged()
        except NodeError as exc:
            LOG.error("%s: nothing staged", exc)
            datapath.discard_staged()
            return
        if staged is None:
            datapath.discard_staged()
            return
        try:
            policy, entries = parse_and_pack(staged["text"], staged.get("source") or "staged.json")
        except PolicyError as exc:
            datapath.discard_staged()
            LOG.error("saved staged policy no longer valid, nothing staged: %s", exc)
            return
        datapath.stage_policy(entries, reset_counts=False)
        self._policy, self._staged = policy, staged
        LOG.info("staged policy restored digest=%s", policy.digest)

    def stage(self, text, source="<request>"):
        policy, entries = parse_and_pack(text, source)  # PolicyError: nothing changed
        agent = self.agent
        with agent._lock:
            staged = {"text": text, "source": source, "since": time.time()}
            agent.datapath.stage_policy(entries)
            try:
                agent.store.save_staged(staged)
            except NodeError:
                self._undo()
                raise
            self._policy, self._staged = policy, staged
        LOG.info("policy staged digest=%s entries=%d source=%s", policy.digest, entries.count, source)
        return {"digest": policy.digest, "entries": entries.count, "active": agent.show_policy()["digest"]}

    def _undo(self):
        """Put back what was staged before (the lock is held)."""
        if self._policy is None:
            self.agent.datapath.discard_staged()
        else:
            from bayctl.policy import pack_policy

            self.agent.datapath.stage_policy(pack_policy(self._policy))

    def show(self):
        agent = self.agent
        with agent._lock:       # the datapath opens its pins lazily: one thread at a time
            counts = agent.datapath.audit_counts() if self._policy is not None else {}
        staged = self._staged or {}
        pairs = []
        for (src, dst), values in sorted(counts.items()):
            pair = {"from": self._name(src), "to": self._name(dst), "from_tag": src, "to_tag": dst}
            pair.update({field: int(values.get(field, 0)) for field in AUDIT_FIELDS})
            pairs.append(pair)
        return {"digest": self.digest, "source": staged.get("source"), "since": staged.get("since"),
                "active": agent.show_policy()["digest"], "pairs": pairs}

    def discard(self):
        agent = self.agent
        with agent._lock:
            discarded = self.digest
            agent.datapath.discard_staged()
            agent.store.clear_staged()
            self._policy, self._staged = None, None
        if discarded:
            LOG.info("staged policy discarded digest=%s", discarded)
        return {"digest": None, "discarded": discarded}

    def promote(self, expected=None):
        """Make the staged policy active. `expected`: digests (If-Match) the staged one must have."""
        staged, policy = self._staged, self._policy
        if policy is None:
            raise ApiError(409, "nothing staged on this node (`bayctl node apply --audit FILE` stages one)")
        if expected and policy.digest not in expected and "*" not in expected:
            raise ApiError(412, f"precondition failed: the staged policy is {policy.digest}, not "
                                f"{', '.join(sorted(expected))}")
        result = self.agent.apply_policy(staged["text"], source=staged.get("source") or "<staged>")
        return {**result, "promoted": True}

    def applied(self, digest):
        """The active policy is now `digest` (the lock is held): if it is the staged one, the
        staging is over (promoted)."""
        if self._policy is None or self._policy.digest != digest:
            return
        self.agent.datapath.discard_staged()
        try:
            self.agent.store.clear_staged()
        except NodeError as exc:
            LOG.warning("staged policy promoted, but its file stays: %s", exc)
        self._policy, self._staged = None, None
        LOG.info("staged policy promoted digest=%s", digest)

    def _name(self, tag):
        for policy in (self._policy, self.agent._policy):
            if policy is not None:
                name = policy.group_name(tag)
                if name:
                    return name
        return "external" if tag == 0 else str(tag)


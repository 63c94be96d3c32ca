"""A bay's policy history: the policies it was last seeded with, each with its text.

Kept in the bay's state directory, beside bay.json:

    history.json            newest last: {"digest", "time", "source", "who", "action"} per apply
    policies/<digest>.yaml  the exact text that was seeded (what rollback re-seeds)

`record_applied` is the ONE place an apply is recorded; every path that puts a policy on the
bay's slaves calls it once every slave holds the policy (create's seeding, `policy apply
--bay`, promote, rollback), whatever carried the policy to the nodes. Writes are atomic;
the last KEEP records are kept, and the texts no record names any more are removed.
"""

import dataclasses
import getpass
import json
import os
import socket
import time
from typing import List, Optional, Tuple

from bayctl import atomicfile
from bayctl.errors import BayctlError

HISTORY_FILE = "history.json"
POLICIES_DIR = "policies"
KEEP = 20

# What put the policy there.
CREATE, APPLY, PROMOTE, ROLLBACK = "create", "apply", "promote", "rollback"


@dataclasses.dataclass(frozen=True)
class Record:
    digest: str
    time: float         # epoch seconds, when every slave held it
    source: str         # the file it came from (as given, made absolute), or what it was
    who: str            # user@host that applied it
    action: str         # CREATE | APPLY | PROMOTE | ROLLBACK

    def when(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))


def who_applies() -> str:
    """user@host of this process (the login name if the environment does not say)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def record_applied(state_dir: str, text: str, digest: str, source: str, action: str = APPLY) -> Record:
    """Record that every slave now holds the policy `text` (with `digest`), and keep its text."""
    os.makedirs(os.path.join(state_dir, POLICIES_DIR), mode=0o700, exist_ok=True)
    atomicfile.write_atomically(policy_file(state_dir, digest), text)
    record = Record(digest, time.time(), source, who_applies(), action)
    kept = (records(state_dir) + [record])[-KEEP:]
    document = {"history": [dataclasses.asdict(r) for r in kept]}
    atomicfile.write_atomically(os.path.join(state_dir, HISTORY_FILE), json.dumps(document, indent=1) + "\n")
    _remove_unnamed_texts(state_dir, {r.digest for r in kept})
    return record


def record_if_taken(state_dir: str, text: str, digest: str, previous: Optional[str], source: str,
                    action: str = APPLY) -> Optional[Record]:
    """After every slave took a policy, however it got there (SSH seeding or the bay's
    ZooKeeper): record it, unless the bay already held it and nothing asked for a record
    (a promotion or a rollback always is one)."""
    if digest == previous and action not in (PROMOTE, ROLLBACK):
        return None
    return record_applied(state_dir, text, digest, source, action)


def records(state_dir: str) -> List[Record]:
    """Every kept record, oldest first ([] for a bay without history)."""
    path = os.path.join(state_dir, HISTORY_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
        return [Record(**item) for item in document["history"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BayctlError(f"{path}: unreadable policy history: {exc}") from None


def policy_file(state_dir: str, digest: str) -> str:
    return os.path.join(state_dir, POLICIES_DIR, f"{digest}.yaml")


def find(state_dir: str, digest_prefix: Optional[str], current: Optional[str]) -> Tuple[Record, str]:
    """The record to roll back to, and its text: the one whose digest starts with
    `digest_prefix`, or (None) the newest whose digest is not `current`."""
    kept = records(state_dir)
    if digest_prefix:
        wanted = digest_prefix.strip().lower()
        matching = {r.digest for r in kept if r.digest.startswith(wanted)}
        if not matching:
            raise BayctlError(f"no policy {digest_prefix!r} in this bay's history "
                              f"(`bayctl policy history` lists {len({r.digest for r in kept})})")
        if len(matching) > 1:
            raise BayctlError(f"digest {digest_prefix!r} is ambiguous: it starts "
                              f"{', '.join(sorted(d[:12] for d in matching))}")
        record = [r for r in kept if r.digest in matching][-1]
    else:
        earlier = [r for r in kept if r.digest != current]
        if not earlier:
            raise BayctlError("nothing to roll back to: the history holds no policy but the current one")
        record = earlier[-1]
    try:
        with open(policy_file(state_dir, record.digest), encoding="utf-8") as handle:
            return record, handle.read()
    except OSError as exc:
        raise BayctlError(f"policy {record.digest[:12]}: its kept text is unreadable: {exc.strerror}") \
            from None


def held_text(state_dir: str, digest: Optional[str], policy_path: Optional[str]) -> Optional[str]:
    """The text of the policy the bay was last seeded with (`digest`), or None when it holds none.

    Kept by record_applied; for a bay seeded before history existed, its recorded file is used
    when it still has that digest."""
    if not digest:
        return None
    try:
        with open(policy_file(state_dir, digest), encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        pass
    if policy_path:
        from bayctl.policy import load_policy

        try:
            if load_policy(policy_path).digest == digest:
                with open(policy_path, encoding="utf-8") as handle:
                    return handle.read()
        except (OSError, BayctlError):
            pass
    raise BayctlError(f"the bay holds policy {digest[:12]}, whose text is no longer kept "
                      f"({policy_path or 'no file recorded'} has changed)")


def _remove_unnamed_texts(state_dir, digests):
    directory = os.path.join(state_dir, POLICIES_DIR)
    for name in os.listdir(directory):
        if name.endswith(".yaml") and name[:-len(".yaml")] not in digests:
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass

"""A bay's policy beyond `apply`: what it holds, its history, rollback.

Every function takes the bay's name, as bayctl.api's verbs do; re-seeding goes through
bayctl.create.seeding.seed_bay (the one way a policy is put on a bay, with its guarantees:
every slave applies it unless it holds it, its digest is read back, a failed node is named)
and is recorded in the bay's history there.
"""

from typing import List, Optional

from bayctl import history
from bayctl.create.seeding import seed_bay
from bayctl.create.state import bay_lock
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
        return seed_bay(bay.state, bay.nodes, kept, ssh_user=bay.ssh_user, ssh_key=bay.ssh_key, status=status,
                        text=text, action=history.ROLLBACK, source=record.source)

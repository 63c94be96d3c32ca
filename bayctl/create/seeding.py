"""Seed a policy on a bay's slaves and record the outcome in the bay's state.

Used by the create pipeline's seed step and by `bayctl policy apply FILE --bay NAME`.
"""

import os

from bayctl import history
from bayctl.errors import SeedError
from bayctl.policy import load_policy, parse_policy
from bayctl.providers.base import MASTER, SLAVE


def seed_bay(state, nodes, policy_path, *, ssh_user, ssh_key, status=None, text=None, action=history.APPLY,
             source=None):
    """Push the policy at `policy_path` (or `text`, named `policy_path`) to every slave; returns
    the per-node results. Once every slave holds it, the bay's history records it (`action`,
    `source`: what to call it there, default the file).

    Raises PolicyError (before any contact) for a bad policy and SeedError naming every node
    that failed; the others are seeded all the same.
    """
    from bayctl.seed.runner import seed_policy

    if text is None:
        policy = load_policy(policy_path)
        with open(policy_path, encoding="utf-8") as handle:
            text = handle.read()
    else:
        policy = parse_policy(text, source=policy_path)
    previous = state.policy_digest
    slaves = [node for node in nodes if node.role == SLAVE]
    master = next(node for node in nodes if node.role == MASTER)
    done = []

    def progress(result):
        done.append(result)
        if status is not None:
            status.update(str(result), len(done), len(slaves))

    # seed_policy's default way: the agent's API through curl, one command per node
    # (bench/seed.py: the nodes' CPU is the floor, and `bayctl node` three times per node costs
    # ~30x more of it); bayctl's node image has curl, as has this machine for the local bay.
    results = seed_policy(slaves, text, bay_state_dir=state.directory, ssh_user=ssh_user, ssh_key=ssh_key,
                          bastion=master, progress=progress, raise_on_failure=False)
    state.last_seed = [{"node": r.node, "status": r.status, "reason": r.reason} for r in results]
    failed = [r for r in results if not r.ok]
    if not failed:
        state.policy_digest = policy.digest
        state.policy_path = os.path.abspath(policy_path)  # `show` names it wherever it is run
    state.save()
    if not failed:
        history.record_if_taken(state.directory, text, policy.digest, previous, source or state.policy_path,
                                action)
    if failed:
        named = "; ".join(f"{r.node}: {r.reason}" for r in failed)
        raise SeedError(f"seeding failed on {len(failed)} of {len(results)} slaves ({named})",
                        results=results)
    return results

"""Seed a policy on a bay's slaves and record the outcome in the bay's state.

Used by the create pipeline's seed step and by `bayctl policy apply FILE --bay NAME`.
"""

import os

from bayctl.errors import SeedError
from bayctl.policy import load_policy


def seed_bay(state, policy_path, *, status=None):
    """Push the policy at `policy_path` to every slave of the bay `state` records (its nodes
    and login); returns the per-node results.

    Raises PolicyError (before any contact) for a bad policy and SeedError naming every node
    that failed; the others are seeded all the same.
    """
    from bayctl.seed.runner import seed_policy

    policy = load_policy(policy_path)
    with open(policy_path, encoding="utf-8") as handle:
        text = handle.read()
    slaves, master, login = state.slaves, state.master, state.login
    done = []

    def progress(result):
        done.append(result)
        if status is not None:
            status.update(str(result), len(done), len(slaves))

    # The agent's API through curl, one command per node (bench/seed.py: the nodes' CPU is the
    # floor, and `bayctl node` three times per node costs ~30x more of it); bayctl's node image
    # has curl (its wait conditions need it too), as has this machine for the local bay.
    results = seed_policy(slaves, text, bay_state_dir=state.directory, ssh_user=login.user, ssh_key=login.key,
                          bastion=master, progress=progress, raise_on_failure=False, remote="curl")
    state.last_seed = [{"node": r.node, "status": r.status, "reason": r.reason} for r in results]
    failed = [r for r in results if not r.ok]
    if not failed:
        state.policy_digest = policy.digest
        state.policy_path = os.path.abspath(policy_path)  # `show` names it wherever it is run
    state.save()
    if failed:
        named = "; ".join(f"{r.node}: {r.reason}" for r in failed)
        raise SeedError(f"seeding failed on {len(failed)} of {len(results)} slaves ({named})",
                        results=results)
    return results

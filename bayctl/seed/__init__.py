"""SSH fan-out of the group policy to a bay's slaves (asyncssh).

    from bayctl.seed import seed_policy
    results = seed_policy(nodes, policy_text, bay_state_dir=..., ssh_user="root",
                          ssh_key="~/.bayctl/demo/id_ed25519", bastion=master)

See runner.py for what is done per node, remote.py for the node-side commands, and
bayctl.remote for how nodes are reached and trusted.
"""

from bayctl.seed.runner import (
    FAILED,
    SEEDED,
    UNCHANGED,
    NodeResult,
    seed_policy,
    seed_policy_async,
)

__all__ = ["FAILED", "SEEDED", "UNCHANGED", "NodeResult", "seed_policy", "seed_policy_async"]

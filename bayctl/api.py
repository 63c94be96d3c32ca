"""bayctl as a library: the same verbs for bays as the CLI (and as openstacksdk has for its
resources), for test harnesses and scripts.

    from bayctl import create_bay, get_bay, list_bays, delete_bay, apply_policy, verify_bay

    bay = create_bay("first", policy="web-db", slaves=2)   # local bay; a file path or an example name
    report = bay.verify()            # or verify_bay("first")
    assert not report.mismatches
    bay.apply_policy("stars")
    bay.delete()

Every failure is a typed bayctl error (bayctl.errors) with a one-line message.
"""

import dataclasses
import os
import shlex
import time
from typing import List, Optional, Sequence

from bayctl.create.context import Status
from bayctl.create.pipeline import create_bay as _create
from bayctl.create.pipeline import delete_bay as _delete
from bayctl.create.state import BayState, bay_lock, list_states
from bayctl.errors import BayctlError
from bayctl.model import Node
from bayctl.spec import BaySpec, load_spec


class BayNotFound(BayctlError):
    """No bay of that name is known here (no state in bayctl's state directory)."""


@dataclasses.dataclass
class Bay:
    """A handle on one bay (a snapshot of its state; `refresh()` reloads it)."""

    state: BayState

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def provider(self) -> str:
        return self.state.provider

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def spec(self) -> BaySpec:
        return BaySpec.from_dict(self.state.spec)

    # The bay's nodes and login are its state's (bayctl.create.state.BayState): shown here as is.

    @property
    def nodes(self) -> List[Node]:
        return self.state.nodes

    @property
    def master(self) -> Optional[Node]:
        return self.state.master

    @property
    def slaves(self) -> List[Node]:
        return self.state.slaves

    @property
    def ssh_user(self) -> str:
        return self.state.login.user

    @property
    def ssh_key(self) -> str:
        return self.state.login.key

    def refresh(self) -> "Bay":
        self.state = get_bay(self.name).state
        return self

    def apply_policy(self, policy_path: str, status: Optional[Status] = None):
        return apply_policy(self.name, policy_path, status=status)

    def verify(self, status: Optional[Status] = None):
        return verify_bay(self.name, status=status)

    def delete(self, status: Optional[Status] = None) -> bool:
        return delete_bay(self.name, status=status)

    def health(self):
        """Per slave: agent up, and the digest it enforces vs the one the bay was seeded with
        (one SSH round; bayctl.verify.health). [] for a bay without nodes."""
        from bayctl.verify.health import bay_health

        if not self.nodes:
            return []
        return bay_health(self.nodes, self.state.policy_digest, bay_state_dir=self.state.directory,
                          ssh_user=self.ssh_user, ssh_key=self.ssh_key)

    def to_dict(self) -> dict:
        """What `bayctl show` prints."""
        state = self.state
        return {
            "name": state.name,
            "provider": state.provider,
            "status": state.status,
            "ref": state.ref,
            "master": (self.master.public_ip if self.master else None),
            "slaves": [f"{n.name} {n.private_ip}" for n in self.slaves],
            "policy": state.policy_path,
            "policy_digest": state.policy_digest,
            "distribution": _distribution(state),  # how `policy apply` reaches the slaves
            "failed_step": state.failed_step,
            "reason": state.reason,
            "steps": state.steps,
            "state_dir": state.directory,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.updated_at)),
        }


def _distribution(state) -> str:
    from bayctl.distribution import bay_mode

    return bay_mode(state)


def create_bay(name: str, *, spec_file: Optional[str] = None, retain: bool = False, verify: bool = False,
               status: Optional[Status] = None, provider_options: Optional[dict] = None, **fields) -> Bay:
    """Create (or resume) a bay. `fields` are bay.yaml keys (provider, slaves, policy, ...) and
    override `spec_file`. Returns the bay once its policy is seeded (and verified, if asked).
    `provider_options` go to the provider (e.g. heat's `environments`)."""
    spec = load_spec(spec_file, name=name, overrides=fields)
    return Bay(_create(spec, retain=retain, verify=verify, status=status, provider_options=provider_options))


def get_bay(name: str) -> Bay:
    state = BayState.load(name)
    if state is None:
        raise BayNotFound(f"no bay {name!r} (see `bayctl list`)")
    return Bay(state)


def find_bay(name: str) -> Optional[Bay]:
    state = BayState.load(name)
    return Bay(state) if state is not None else None


def list_bays() -> List[Bay]:
    return [Bay(state) for state in list_states()]


def delete_bay(name: str, *, status: Optional[Status] = None,
               provider_options: Optional[dict] = None) -> bool:
    """Remove the bay and everything bayctl made for it; False if there was none."""
    return _delete(name, status=status, provider_options=provider_options)


def apply_policy(name: str, policy_path: str, *, status: Optional[Status] = None,
                 distribution: Optional[str] = None):
    """Seed a policy (a file, or a shipped example's name) on every slave of the bay (live: the
    datapath swaps it atomically).

    `distribution`: ssh or zookeeper for this once (default: the bay's, bayctl.distribution).
    Returns per-node results; raises SeedError naming each node that failed."""
    from bayctl.distribution import put_policy
    from bayctl.share import policy_path as resolve_policy

    bay = get_bay(name)
    policy_path = resolve_policy(policy_path)  # a file, or a shipped example's name; stored absolute
    with bay_lock(name):
        return put_policy(bay.state, bay.nodes, policy_path, ssh_user=bay.ssh_user, ssh_key=bay.ssh_key,
                          status=status, distribution=distribution)


def ssh_argv(name: str, node: Optional[str] = None, command: Sequence[str] = ()) -> List[str]:
    """The OpenSSH command line that logs in to a node of the bay (default: the master) with
    the bay's key and known_hosts only (no ssh-agent, no ~/.ssh/config, a changed host key
    refused), slaves through the master as seeding reaches them. `command` runs there instead
    of a shell, its words kept as given."""
    from bayctl.remote.hostkeys import KNOWN_HOSTS_NAME

    bay = get_bay(name)
    nodes = {n.name: n for n in bay.nodes}
    if not nodes:
        raise BayctlError(f"bay {name} has no nodes yet ({bay.status})")
    target = nodes.get(node or (bay.master.name if bay.master else ""))
    if target is None:
        raise BayctlError(f"bay {name} has no node {node!r} (nodes: {', '.join(nodes)})")
    base = ["ssh", "-F", "/dev/null", "-i", bay.ssh_key, "-l", bay.ssh_user,
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={os.path.join(bay.state.directory, KNOWN_HOSTS_NAME)}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"]
    argv = list(base)
    if not target.public_ip:
        if bay.master is None or not bay.master.public_ip:
            raise BayctlError(f"{target.name} has no public address and bay {name} no master to reach it")
        argv += ["-o", f"ProxyCommand={shlex.join(base + ['-W', '[%h]:%p', bay.master.public_ip])}"]
    argv.append(target.public_ip or target.private_ip)
    if command:
        argv += ["--", shlex.join(command)]
    return argv


def verify_bay(name: str, *, status: Optional[Status] = None):
    """Measure the bay's connectivity matrix against its policy; returns a verify Report."""
    from bayctl.verify import verify_bay_state

    bay = get_bay(name)
    if not bay.nodes:
        raise BayctlError(f"bay {name} has no nodes yet ({bay.status}): `bayctl create mesosbay {name}` "
                          "finishes it")
    with bay_lock(name):
        return verify_bay_state(bay.state, bay.nodes, ssh_user=bay.ssh_user, ssh_key=bay.ssh_key,
                                status=status)

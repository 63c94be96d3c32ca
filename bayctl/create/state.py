"""What exists of a bay: one JSON file in the bay's own state directory.

    ~/.local/state/bayctl/bays/NAME/bay.json      (a user)
    /var/lib/bayctl/bays/NAME/bay.json            (root)
    $BAYCTL_STATE_DIR/NAME/bay.json               (override, e.g. tests)

The directory also holds what other steps keep per bay: the nodes' host keys
(known_hosts, written by bayctl.seed), the bay's SSH key, and the local provider's
per-node files. bay.json is written atomically (temp file, fsync, rename): a crash or
Ctrl-C leaves the previous or the new state, never a torn one, so `create` can resume
and `delete` can find everything.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import time
from typing import Dict, List, Optional

from bayctl import atomicfile
from bayctl.errors import BayctlError, SpecError
from bayctl.model import Login, Node, master_of, slaves_of

STATE_FILE = "bay.json"
LOCK_FILE = ".lock"
ENV_STATE_DIR = "BAYCTL_STATE_DIR"

# Overall status, in bayctl's own words.
CREATING, READY, FAILED, DELETING = "CREATING", "READY", "FAILED", "DELETING"
DAMAGED = "DAMAGED"  # bay.json cannot be read: listed with its reason, removable by delete


def state_root() -> str:
    """Directory holding one subdirectory per bay."""
    override = os.environ.get(ENV_STATE_DIR)
    if override:
        return os.path.abspath(override)
    if os.geteuid() == 0:
        return "/var/lib/bayctl/bays"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "bayctl", "bays")


def bay_dir(name: str) -> str:
    return os.path.join(state_root(), name)


def bay_key_path(directory: str) -> str:
    """The SSH key bayctl makes for a bay that was given none (in the bay's state directory)."""
    return f"{directory}/id_ed25519"


class BayBusy(BayctlError):
    """Another bayctl process is creating, deleting or verifying this bay."""


# Step outputs that bay.json files written before they had their own fields kept in `extra`:
# field -> the old key. Read once on load, written back as fields on the next save.
_FORMER_EXTRA_KEYS = {"image_id": "image_id", "template_id": "template",
                      "container_subnets": "container_subnets", "probe_subnets": "probe_subnets",
                      "last_seed": "seed"}


@dataclasses.dataclass
class BayState:
    """The saved record of one bay: what it is (spec), how far create got (steps), and what
    the steps found out, each in its own field."""

    name: str
    provider: str
    spec: dict
    status: str = CREATING
    ref: Optional[str] = None  # stack / cluster id, or the local bay's name
    nodes: List[Node] = dataclasses.field(default_factory=list)  # master first (collect-nodes)
    ssh_user: Optional[str] = None  # the login on the nodes (create fixes it from spec and provider)
    ssh_key: Optional[str] = None  # its private key file
    steps: Dict[str, str] = dataclasses.field(default_factory=dict)  # step name -> "done" / "skipped"
    policy_digest: Optional[str] = None  # last policy seeded on every slave
    policy_path: Optional[str] = None
    failed_step: Optional[str] = None
    reason: Optional[str] = None
    updated_at: float = dataclasses.field(default_factory=time.time)
    image_id: Optional[str] = None  # the Glance image the nodes boot (ensure-image)
    template_id: Optional[str] = None  # the cluster template the bay is built from (ensure-template)
    container_subnets: Dict[str, str] = dataclasses.field(default_factory=dict)  # slave -> subnet
    probe_subnets: Dict[str, str] = dataclasses.field(default_factory=dict)  # slave -> verify's probes
    last_seed: List[dict] = dataclasses.field(default_factory=list)  # per node: node, status, reason
    extra: dict = dataclasses.field(default_factory=dict)  # what bayctl made besides (created_keypair)

    @property
    def directory(self) -> str:
        return bay_dir(self.name)

    @property
    def master(self) -> Optional[Node]:
        return master_of(self.nodes)

    @property
    def slaves(self) -> List[Node]:
        return slaves_of(self.nodes)

    @property
    def login(self) -> Login:
        """User and key bayctl logs in to the nodes with: fixed when create starts; for a bay.json
        of before these fields, what create would have fixed (the spec's, else the provider's
        default user and the bay's own key)."""
        user = self.ssh_user or self.spec.get("ssh_user")
        if not user:
            from bayctl.providers import provider_info

            user = provider_info(self.provider).default_ssh_user
        return Login(user=user, key=self.ssh_key or self.spec.get("ssh_key") or bay_key_path(self.directory))

    def save(self) -> None:
        self.updated_at = time.time()
        write_atomically(os.path.join(self.directory, STATE_FILE),
                         json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, name: str) -> Optional["BayState"]:
        """The saved state of bay `name`, or None if bayctl knows no such bay."""
        path = os.path.join(bay_dir(name), STATE_FILE)
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise DamagedState(f"unreadable bay state: {err}{_REMOVE.format(name)}", path=path) from None
        if not isinstance(data, dict):
            raise DamagedState(f"damaged bay state: a JSON {type(data).__name__}, not an object"
                               f"{_REMOVE.format(name)}", path=path)
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in data and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise DamagedState(f"damaged bay state: no {', '.join(missing)}{_REMOVE.format(name)}", path=path)
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {key: value for key, value in data.items() if key in known}
        extra = dict(fields.get("extra") or {})
        for field, former in _FORMER_EXTRA_KEYS.items():  # a bay.json of before these fields
            if field not in fields and former in extra:
                fields[field] = extra.pop(former)
        fields["extra"] = extra
        try:
            fields["nodes"] = [Node(**node) for node in fields.get("nodes") or []]
        except TypeError as err:
            raise DamagedState(f"damaged bay state: nodes: {err}{_REMOVE.format(name)}", path=path) from None
        return cls(**fields)

    @classmethod
    def damaged(cls, name: str, reason: str) -> "BayState":
        """A stand-in for a bay whose bay.json cannot be read, so `list` can show it."""
        return cls(name=name, provider="unknown", spec={}, status=DAMAGED, reason=reason)


_REMOVE = " (`bayctl delete bay {}` removes the bay)"


class DamagedState(SpecError):
    """A bay's bay.json exists but cannot be read (not JSON, or not a bay's record)."""


def list_states() -> List[BayState]:
    root = state_root()
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    states = []
    for name in names:
        try:
            state = BayState.load(name)
        except DamagedState as err:  # one bad record must not hide every other bay
            state = BayState.damaged(name, str(err))
        if state is not None:
            states.append(state)
    return states


def ensure_dir(path: str) -> None:
    # 0700: the directory holds the bay's private SSH key and its trust (known_hosts).
    os.makedirs(path, mode=0o700, exist_ok=True)


def remove_bay_dir(name: str) -> None:
    shutil.rmtree(bay_dir(name), ignore_errors=True)


def write_atomically(path: str, text: str, mode: int = 0o600) -> None:
    ensure_dir(os.path.dirname(path))
    atomicfile.write_atomically(path, text, mode)


@contextlib.contextmanager
def bay_lock(name: str):
    """Hold the bay's lock for the duration (one create/delete/verify at a time per bay)."""
    directory = bay_dir(name)
    ensure_dir(directory)
    fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BayBusy(f"bay {name}: another bayctl command is working on it; wait for it to finish") \
                from None
        yield
    finally:
        os.close(fd)

"""The one interface every provider (magnum, heat, local) implements.

A provider turns a bay request into running nodes and back. The create pipeline
(`bayctl.create`) only ever talks to this interface, so it does not know whether the
bay is a Magnum cluster, a Heat stack of our own templates, or namespaces on this
machine.

Lifecycle, as the pipeline drives it::

    provider = get_provider("heat", conn)            # bayctl.providers.get_provider
    ref = provider.create(BayRequest(name="demo", slaves=3, ...))   # returns at once
    provider.wait(ref, progress=print, timeout=1800)  # raises StackFailed / CloudError
    nodes = provider.nodes(ref)                      # [Node(...), ...]
    provider.delete(ref)                             # idempotent
    provider.list()                                  # [BayStatus(...), ...]

`create` must be idempotent: if a bay of that name already exists it returns its
reference instead of creating a second one (re-running `create` resumes).
"""

import abc
import dataclasses
from typing import Callable, Optional

MASTER = "master"
SLAVE = "slave"


@dataclasses.dataclass(frozen=True)
class Node:
    """One machine of a bay, as the seed and verify steps need it."""

    name: str
    role: str  # MASTER or SLAVE
    public_ip: Optional[str]  # reachable from where bayctl runs (None: reach it through the master)
    private_ip: Optional[str]  # address on the bay's own network


@dataclasses.dataclass
class BayRequest:
    """What the create pipeline asks a provider for (a BaySpec reduced to what providers use)."""

    name: str
    slaves: int = 1
    image: Optional[str] = None  # Glance image name or id (cloud providers)
    keypair: Optional[str] = None
    master_flavor: Optional[str] = None
    slave_flavor: Optional[str] = None
    external_network: Optional[str] = None
    dns_nameserver: Optional[str] = None
    private_cidr: str = "10.0.0.0/24"
    container_cidr: str = "10.100.0.0/16"  # one subnet per node, derived (bayctl.node.hostgw)
    labels: dict = dataclasses.field(default_factory=dict)  # passed through (magnum labels, heat params)
    timeout: int = 3600  # seconds the whole build may take
    extra: dict = dataclasses.field(default_factory=dict)  # provider-specific knobs


@dataclasses.dataclass
class Progress:
    """One progress report while waiting: an event, and how far the build is."""

    message: str  # e.g. "slaves.0.server CREATE_COMPLETE"
    done: int  # resources finished
    total: int  # resources known so far (grows as nested stacks appear)
    status: str = ""  # overall status, e.g. CREATE_IN_PROGRESS


ProgressCallback = Callable[[Progress], None]


@dataclasses.dataclass
class BayStatus:
    """One bay as `list()` reports it."""

    name: str
    id: str
    status: str  # provider's own words, e.g. CREATE_COMPLETE
    provider: str
    reason: str = ""


class Provider(abc.ABC):
    """Backend that builds bays. Subclasses set `name` and implement every method."""

    name = "abstract"

    @abc.abstractmethod
    def create(self, request: BayRequest) -> str:
        """Start building the bay; return a reference (stack/cluster id). Does not wait.

        If a bay with this name already exists, returns its reference (idempotent).
        Raises CloudError when the cloud refuses (nothing is left half-created)."""

    @abc.abstractmethod
    def wait(self, ref: str, progress: Optional[ProgressCallback] = None, timeout: Optional[float] = None,
             action: str = "CREATE") -> BayStatus:
        """Block until the bay's `action` completes; report each event through `progress`.

        Raises StackFailed naming the deepest failed resource, or CloudError on timeout."""

    @abc.abstractmethod
    def nodes(self, ref: str) -> list:
        """The bay's nodes (list of Node): the master first, then the slaves in order."""

    @abc.abstractmethod
    def delete(self, ref: str, wait: bool = True, progress: Optional[ProgressCallback] = None,
               timeout: Optional[float] = None) -> None:
        """Remove the bay (and what bayctl made for it only). Missing bay: no error."""

    @abc.abstractmethod
    def list(self) -> list:
        """Bays this provider knows of (list of BayStatus)."""

    def find(self, name: str) -> Optional[BayStatus]:
        """The bay called `name`, or None."""
        for bay in self.list():
            if bay.name == name or bay.id == name:
                return bay
        return None

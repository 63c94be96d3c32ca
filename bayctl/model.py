"""The records every layer shares: a bay's nodes, what is asked of a provider, and what it reports.

The bottom layer (DESIGN: cli -> create -> (image, providers, seed, verify) -> (cloud, node
protocol) -> model): it imports nothing of bayctl, so the cloud code, the providers, the
pipeline and verification can all speak of a `Node` or a `BayStatus` without importing each
other.
"""

import dataclasses
from typing import Callable, Optional

MASTER = "master"
SLAVE = "slave"
# Where a Mesos master's ZooKeeper listens (ZooKeeper's own default; Magnum's and bayctl's
# master images both keep it).
ZOOKEEPER_PORT = 2181


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
    ssh_public_key: Optional[str] = None  # OpenSSH line, for providers that install the login key themselves


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
    """One bay as a provider's `list()` reports it."""

    name: str
    id: str
    status: str  # provider's own words, e.g. CREATE_COMPLETE
    provider: str
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Login:
    """How bayctl logs in to a bay's nodes: the user and the private key file."""

    user: str
    key: str

    @property
    def sudo(self) -> bool:
        """Commands that need root run under `sudo -n` unless the login is root."""
        return self.user != "root"


def master_of(nodes) -> Optional[Node]:
    return next((node for node in nodes if node.role == MASTER), None)


def slaves_of(nodes) -> list:
    return [node for node in nodes if node.role == SLAVE]

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
from typing import Optional

# The records live at the bottom layer (bayctl.model); they are re-exported here for callers
# that think of them as the provider interface's.
from bayctl.model import MASTER, SLAVE, BayRequest, BayStatus, Node, Progress, ProgressCallback

__all__ = ["Provider", "ProviderInfo", "Node", "BayRequest", "BayStatus", "Progress", "ProgressCallback",
           "MASTER", "SLAVE"]


@dataclasses.dataclass(frozen=True)
class ProviderInfo:
    """What a provider is, for the pipeline (kind's ProviderInfo): facts, not behaviour.

    The create steps read these instead of asking for a provider by name."""

    needs_cloud: bool = True  # built in an OpenStack cloud: a connection, Glance, a Nova keypair
    needs_image: bool = True  # its nodes boot a Glance image that must exist (ensure-image)
    uses_template: bool = False  # builds from a template ensure_template makes (ensure-template)
    default_ssh_user: str = "debian"  # the login on its nodes when the spec names none
    agent_wait_timeout: float = 900.0  # seconds wait-for-agents allows at most (cloud-init is slow)
    installs_login_key: bool = False  # takes the bay's public key itself (BayRequest.ssh_public_key)
    refused_key_is_final: bool = False  # a node refusing the bay's key will not start accepting it
    runs_own_zookeeper: bool = False  # its ZooKeeper is bayctl's own, reached directly (local bay)


class Provider(abc.ABC):
    """Backend that builds bays. Subclasses set `name` and `info`, and implement every abstract
    method; the others have defaults that suit a provider without that capability."""

    name = "abstract"
    info = ProviderInfo()

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

    # -- what the pipeline asks beyond the lifecycle; each default is "nothing to do" ---------

    def check(self, name: str) -> None:
        """Pre-flight before anything is made (tools, permissions, name clashes); raises CloudError."""
        return None

    def ensure_template(self, request: BayRequest) -> Optional[str]:
        """Make sure the template the bay is built from exists (info.uses_template); its id."""
        return None

    def prepare_nodes(self, ref: str, nodes: list, request: BayRequest) -> Optional[str]:
        """Adjust the cloud around collected nodes (e.g. Magnum's ports get the container range
        as an allowed address pair); a line for the user about what changed, or None."""
        return None

    def host_keys(self, ref: str) -> dict:
        """address -> host public key, where the provider made the keys and knows them up front
        (the first SSH contact is then checked, not trusted). {} when unknown."""
        return {}

    def container_subnets(self, ref: str, nodes: list, request: BayRequest) -> dict:
        """slave name -> its container subnet: by default derived from the slave's private
        address as the node derives it at boot (bayctl.node.hostgw)."""
        from bayctl.errors import CloudError
        from bayctl.node.hostgw import RangeError, container_subnet

        try:
            return {node.name: container_subnet(node.private_ip, request.private_cidr, request.container_cidr)
                    for node in nodes if node.role == SLAVE}
        except (RangeError, TypeError, ValueError) as err:
            raise CloudError(f"bay {request.name}: no container subnet for its slaves: {err}") from None

    def ref_of(self, name: str, recorded: Optional[str]) -> Optional[str]:
        """The reference to delete a bay by: the recorded one, else the bay found by name."""
        if recorded is not None:
            return recorded
        found = self.find(name)
        return found.id if found else None

    def remove_leftovers(self, name: str) -> bool:
        """Remove what a bay of this name left without any record of it (a run killed before
        its first save); True if something was found. Only where objects are named after the bay."""
        return False

    def zookeeper_hosts(self, ref: str) -> Optional[str]:
        """host:port of a ZooKeeper the provider runs for the bay and bayctl reaches directly
        (bayctl.distribution); None: the bay's own, on its master, if it has one."""
        return None

    def master_zookeeper(self, ref: str) -> Optional[str]:
        """host:port of the ZooKeeper the bay's master states it runs (it answered at boot), as
        the slaves reach it; bayctl goes there through the master's SSH. `distribution auto`
        uses it; None (the default): nothing stated, the bay is seeded over SSH."""
        return None

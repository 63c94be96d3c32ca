"""Attach a container to a bay network: the one path for Docker's Join and CNI's ADD.

Both fronts decide the same things here, in the same order: the container's group (a policy
name or a numeric tag) and whether the node's policy knows it; the link mode and its parent;
the names of the links; then the links themselves, the container end placed in its namespace
(CNI; Docker places it itself), the IP -> group registration with the node agent (which
attaches the policy program before this returns), and, on any failure, the undo of what was
made. As the CNI reference plugins share pkg/ip and pkg/ipam, the fronts share this.
"""

import dataclasses
import hashlib
from typing import Optional, Tuple, Union

from bayctl.errors import NodeError
from bayctl.node import links
from bayctl.policy import layout

Group = Union[str, int]


class GroupRejected(NodeError):
    """The group is not one the node's policy can classify into (unknown name, tag out of range).

    `reason` and `details` apart for CNI's error JSON; str() says both, for Docker's one line."""

    def __init__(self, reason: str, details: str = ""):
        self.reason, self.details = reason, details
        super().__init__(f"{reason} ({details})" if details else reason)


def group_value(value) -> Optional[Group]:
    """A group as given (option, label, config): a policy name, or a numeric tag (`100`)."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    return int(text) if text.isdigit() else text


def check_group(agent, group: Group) -> None:
    """Refuse, naming the group, what the node's policy cannot classify into (before any link).

    A tag must be in the datapath's range; a name must be a group of the applied policy (the
    agent is asked: an AgentError when it cannot answer)."""
    if isinstance(group, int):
        if not layout.GROUP_MIN <= group <= layout.GROUP_MAX:
            raise GroupRejected(f"group tag {group} is out of range {layout.GROUP_MIN}-{layout.GROUP_MAX}")
        return
    groups = agent.show_policy().get("groups") or {}
    if group not in groups:
        known = ", ".join(sorted(groups)) or "none (no policy applied)"
        raise GroupRejected(f"group {group!r} is not in the node's policy", f"groups: {known}")


def link_mode(requested: str, parent: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """(mode, ipvlan parent or None): "auto" resolved on this kernel, the parent defaulting to
    the interface of the default route."""
    if requested != links.VETH:
        parent = parent or links.default_parent()
    mode = links.choose_mode(requested, parent)
    return mode, parent if links.is_ipvlan(mode) else None


# Docker names links by its network and endpoint ids (hex already); CNI by the sha256 of the
# network's name and of the attachment (container id/ifname).

def network_link_name(prefix: str, network: str) -> str:
    """The node-side link of the CNI network called `network` (bridge, or ipvlan gateway slave)."""
    return links.LinkNames(prefix, _key(network)).network


def endpoint_names(prefix: str, owner: str) -> links.LinkNames:
    """The links of one CNI attachment (`owner`: container id/ifname)."""
    return links.LinkNames(prefix, _key(owner))


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclasses.dataclass
class Placement:
    """Where the container end goes, when the front places it (CNI): its namespace and name,
    the address and gateway it gets."""

    netns: str
    ifname: str
    address: str  # CIDR
    gateway: Optional[str] = None


@dataclasses.dataclass
class Attached:
    host_end: Optional[str]  # the node end of a veth pair (None: ipvlan)
    container: Optional[dict] = None  # {"name", "mac"} of the placed container end


def attach(agent, *, mode: str, names: links.LinkNames, network_link: str, parent: Optional[str],
           ip: str, group: Group, placement: Optional[Placement] = None) -> Attached:
    """Make the container's link on `network_link`, place it, and register ip -> group.

    veth: the policy goes on the node end, which never moves, before the container runs.
    ipvlan: on the container's own interface once placed; without a placement (Docker moves it
    later) IP -> group is registered now, so peers classify it at once, and the front attaches
    the slave's own hook when it appears. Any failure undoes what was made, then propagates."""
    host_end = links.create_endpoint_link(mode, names, network_link, parent)
    try:
        container = None
        if placement is not None:
            container = links.move_and_configure(names.container, placement.netns, placement.ifname,
                                                 placement.address, placement.gateway)
        if host_end:
            agent.add_endpoint(ip, group, ifname=host_end)
        elif placement is not None:
            agent.add_endpoint(ip, group, ifname=placement.ifname, netns=placement.netns)
        else:
            agent.add_endpoint(ip, group)
    except BaseException:
        detach(agent, names, ip, placement, registered=True)
        raise
    return Attached(host_end, container)


def detach(agent, names: links.LinkNames, ip: Optional[str], placement: Optional[Placement] = None,
           registered: bool = True) -> None:
    """Undo attach, best effort: whatever is already gone is fine, the first error is the one
    the caller reports."""
    steps = []
    if ip and registered:
        steps.append(lambda: agent.remove_endpoint(ip))
    if placement is not None:
        steps.append(lambda: links.delete_in_netns(placement.netns, placement.ifname))
    steps.append(lambda: links.delete_endpoint_link(names))
    for step in steps:
        try:
            step()
        except Exception:
            pass

"""What to probe and what the policy says should happen: the expected connectivity matrix.

For every ordered pair of distinct groups (external included, as the source and as the
destination, but not external to itself) the probes try:
- every TCP/UDP port the policy mentions (both ends of a range),
- one TCP and one UDP port that the policy does not mention (proves default deny), UDP even
  when no rule names it (a datapath that only classified TCP would pass UDP unseen),
- ICMP echo;
and, with `intra`, the same from each group to a second member of that group.
The expected outcome of each is `Policy.allows` (the policy model's reference semantics).
"""

import dataclasses
from typing import List, Optional, Tuple

from bayctl.policy import layout
from bayctl.policy.model import EXTERNAL, Policy

UNMENTIONED_FROM = 40000


@dataclasses.dataclass
class Probe:
    """One measured pair: from a probe in group `source` to one in group `target`."""

    source: str
    target: str
    proto: str
    port: Optional[int]
    expected: bool
    observed: Optional[bool] = None
    detail: str = ""
    source_ip: str = ""
    target_ip: str = ""
    seconds: Optional[float] = None  # how long this probe took (a denied one: its whole timeout)

    @property
    def mismatch(self) -> bool:
        return self.observed is not None and self.observed != self.expected

    @property
    def service(self) -> str:
        return self.proto if self.port is None else f"{self.proto}/{self.port}"

    def describe(self) -> str:
        def word(allowed):
            return "allowed" if allowed else "blocked"

        return (f"{self.source} -> {self.target} {self.service}: policy says {word(self.expected)}, "
                f"measured {word(self.observed)} ({self.detail})")

    def to_json(self) -> dict:
        return {"from": self.source, "to": self.target, "proto": self.proto, "port": self.port,
                "expected": "allow" if self.expected else "deny",
                "observed": None if self.observed is None else ("allow" if self.observed else "deny"),
                "detail": self.detail, "from_ip": self.source_ip, "to_ip": self.target_ip}


def probed_services(policy: Policy) -> List[Tuple[str, Optional[int]]]:
    """(proto, port) pairs to try between every two groups, ICMP last."""
    ports = {"tcp": set(), "udp": set()}
    for rule in policy.rules:
        for spec in rule.ports:
            if spec.proto in ports and not spec.any_port:
                ports[spec.proto].update({spec.lo, spec.hi})
    services = []
    for proto in ("tcp", "udp"):
        services += [(proto, port) for port in sorted(ports[proto])]
        services.append((proto, _unmentioned(policy, proto, ports[proto])))
    services.append(("icmp", None))
    return services


def _unmentioned(policy: Policy, proto: str, mentioned) -> int:
    """A port no rule names: the first from 40000 up outside every listed range."""
    number = layout.PROTO_NUMBERS[proto]
    port = UNMENTIONED_FROM
    while port in mentioned or any(spec.covers(number, port) and not spec.any_port
                                   for rule in policy.rules for spec in rule.ports):
        port += 1
    return port


def expected_matrix(policy: Policy, groups: Optional[List[str]] = None, intra: bool = False,
                    services: Optional[List[Tuple[str, Optional[int]]]] = None) -> List[Probe]:
    """Every probe verification runs, with the outcome the policy implies.

    `intra`: also from each group to another member of the same group (intraGroup allow/deny);
    `external` is never probed against itself (its peers are in no group at all).
    `services`: (proto, port) to probe instead of `probed_services(policy)`."""
    names = groups if groups is not None else [*sorted(policy.named_groups), EXTERNAL]
    services = probed_services(policy) if services is None else services
    probes = []
    for source in names:
        for target in names:
            if source == target and (not intra or source == EXTERNAL):
                continue
            for proto, port in services:
                allowed = policy.allows(policy.tag(source), policy.tag(target), layout.PROTO_NUMBERS[proto],
                                        port or 0)
                probes.append(Probe(source, target, proto, port, allowed))
    return probes


def listening_ports(probes: List[Probe]) -> dict:
    """The ports every probe endpoint must answer on."""
    from bayctl.verify.probes import ports_of

    return ports_of((probe.proto, probe.port) for probe in probes)

"""The group policy as data: what a parsed policy file means, independent of YAML.

Sets are normalised when a policy is built (group names sorted, rule endpoints and ports
sorted and de-duplicated), so two files that say the same thing with different layout,
comments, key order or numeric-versus-named group references give equal models and the
same digest. Rule order is kept: it gives each rule its id (1-based position).
"""

import dataclasses
import functools
import hashlib
import json
from typing import Dict, Optional, Tuple

from bayctl.policy import layout

API_VERSION = "bayctl/v1"
KIND = "GroupPolicy"
EXTERNAL = "external"        # the peer is in no group (tag layout.GROUP_EXTERNAL)
ANY_GROUP = "*"              # in from/to: every group of the policy and external
INTRA_ALLOW, INTRA_DENY = "allow", "deny"


@dataclasses.dataclass(frozen=True, order=True)
class PortSpec:
    """One entry of a rule's `ports`: a protocol, optionally narrowed to a port range.

    lo/hi are both None for "any port of this protocol" (the only form icmp has);
    a single port has lo == hi.
    """

    proto: str
    lo: Optional[int] = None
    hi: Optional[int] = None

    @property
    def proto_number(self) -> int:
        return layout.PROTO_NUMBERS[self.proto]

    @property
    def any_port(self) -> bool:
        return self.lo is None

    def covers(self, proto: int, port: int) -> bool:
        """Does a packet of IP protocol `proto` to destination port `port` fall in this spec?"""
        if proto != self.proto_number:
            return False
        return self.any_port or self.lo <= port <= self.hi

    def ports_text(self) -> str:
        """The port part alone: 'any', '5432' or '8000-8191'."""
        if self.any_port:
            return "any"
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"

    def __str__(self) -> str:
        """The policy-file form: tcp, tcp/5432, tcp/8000-8191."""
        return self.proto if self.any_port else f"{self.proto}/{self.ports_text()}"


@dataclasses.dataclass(frozen=True)
class Rule:
    """Allow traffic from any of `sources` to any of `destinations` (one direction).

    Members are group names, `external`, or the single element `*`. `ports` empty means
    every protocol and port. `line` is where the rule starts in its file (not part of
    the rule's meaning, so it takes no part in equality).
    """

    sources: Tuple[str, ...]
    destinations: Tuple[str, ...]
    ports: Tuple[PortSpec, ...] = ()
    line: Optional[int] = dataclasses.field(default=None, compare=False)

    def canonical(self) -> dict:
        return {
            "from": list(self.sources),
            "to": list(self.destinations),
            "ports": [str(spec) for spec in self.ports],
        }


@dataclasses.dataclass(frozen=True)
class Policy:
    """A whole group policy.

    `groups` maps every name a rule may use to its tag, `external` (0) included.
    `source` names the file it came from (for messages; not part of its meaning).
    """

    groups: Dict[str, int]
    rules: Tuple[Rule, ...] = ()
    intra_group: str = INTRA_ALLOW
    source: Optional[str] = dataclasses.field(default=None, compare=False)

    @property
    def named_groups(self) -> Dict[str, int]:
        """The groups the file declares (everything but `external`)."""
        return {name: tag for name, tag in self.groups.items() if name != EXTERNAL}

    def tag(self, name: str) -> int:
        """Tag of a group name; KeyError if the policy has no such group."""
        return self.groups[name]

    def group_name(self, tag: int) -> Optional[str]:
        """Name of the group with this tag, or None."""
        return self._names_by_tag.get(tag)

    def expand(self, members: Tuple[str, ...]) -> Tuple[int, ...]:
        """Tags a rule's from/to stands for, `*` expanded to every group and external."""
        if members == (ANY_GROUP,):
            return tuple(sorted(self.groups.values()))
        return tuple(sorted(self.groups[name] for name in members))

    def allows(self, src_tag: int, dst_tag: int, proto: int, port: int) -> bool:
        """Does the policy allow the first packet of this flow? (The reference semantics.)"""
        if self.intra_group == INTRA_ALLOW and src_tag == dst_tag and src_tag in self._declared_tags:
            return True
        for rule, sources, destinations in self._expanded_rules:
            if src_tag in sources and dst_tag in destinations:
                if not rule.ports or any(spec.covers(proto, port) for spec in rule.ports):
                    return True
        return False

    def canonical(self) -> dict:
        """A plain-data form in which equal policies are equal (what the digest hashes)."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "groups": dict(sorted(self.named_groups.items())),
            "intraGroup": self.intra_group,
            "rules": [rule.canonical() for rule in self.rules],
        }

    def __hash__(self):
        # Equal policies have equal canonical forms, hence equal digests (groups is a dict,
        # so the dataclass cannot hash its fields).
        return hash(self.digest)

    @functools.cached_property
    def digest(self) -> str:
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @functools.cached_property
    def _declared_tags(self):
        return frozenset(self.named_groups.values())

    @functools.cached_property
    def _expanded_rules(self):
        return [(rule, frozenset(self.expand(rule.sources)), frozenset(self.expand(rule.destinations)))
                for rule in self.rules]

    @functools.cached_property
    def _names_by_tag(self) -> Dict[int, str]:
        return {tag: name for name, tag in self.groups.items()}


def make_policy(groups, rules=(), intra_group=INTRA_ALLOW, source=None) -> Policy:
    """Build a normalised Policy from already-validated parts (the parser's last step)."""
    all_groups = {EXTERNAL: layout.GROUP_EXTERNAL}
    all_groups.update(sorted(groups.items()))
    return Policy(
        groups=all_groups,
        rules=tuple(_normalise_rule(rule) for rule in rules),
        intra_group=intra_group,
        source=source,
    )


def _normalise_rule(rule: Rule) -> Rule:
    return Rule(
        sources=_normalise_members(rule.sources),
        destinations=_normalise_members(rule.destinations),
        ports=tuple(sorted(set(rule.ports), key=_port_order)),
        line=rule.line,
    )


def _normalise_members(members):
    return (ANY_GROUP,) if ANY_GROUP in members else tuple(sorted(set(members)))


def _port_order(spec: PortSpec):
    # Proto alone first, then by range; None never compared with an int.
    return (spec.proto, spec.lo is not None, spec.lo or 0, spec.hi or 0)

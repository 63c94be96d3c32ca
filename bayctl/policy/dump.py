"""Model -> canonical policy YAML: what `parse_policy` reads back as an equal policy.

Written line by line rather than by yaml.dump so the layout is the one people write
(groups as a block, rules as a list, short lists inline); scalars still go through
PyYAML so names that YAML would misread (`on`, `"*"`, `0100`) come out quoted.
"""

import functools

import yaml

from bayctl.policy import model


def dump_policy(policy: model.Policy) -> str:
    lines = [f"apiVersion: {model.API_VERSION}", f"kind: {model.KIND}"]
    groups = sorted(policy.named_groups.items())
    lines.append("groups:" if groups else "groups: {}")
    lines += [f"  {_scalar(name)}: {tag}" for name, tag in groups]
    lines.append(f"intraGroup: {policy.intra_group}")
    lines.append("rules:" if policy.rules else "rules: []")
    for rule in policy.rules:
        lines.append(f"  - from: {_members(rule.sources)}")
        lines.append(f"    to: {_members(rule.destinations)}")
        if rule.ports:
            lines.append(f"    ports: {_flow(str(spec) for spec in rule.ports)}")
    return "\n".join(lines) + "\n"


def _members(members):
    return _scalar(members[0]) if len(members) == 1 else _flow(members)


def _flow(items):
    return "[" + ", ".join(_scalar(item) for item in items) + "]"


@functools.lru_cache(maxsize=1 << 16)   # names and port specs repeat across rules
def _scalar(text: str) -> str:
    # A one-element flow list is the smallest document in which PyYAML must quote a
    # scalar exactly as it would inside our flow lists and block mappings.
    dumped = yaml.safe_dump([text], default_flow_style=True, width=1 << 20).strip()
    return dumped[1:-1]

"""bayctl.policy: the group-policy language (model, parser, compiler) and the map layouts.

    policy = load_policy("web.yaml")        # or parse_policy(text, source="<stdin>")
    entries = compile_policy(policy)        # [(layout.PolicyKey, layout.PolicyValue)]
    packed = pack_policy(policy)            # the same entries as bytes: the agent's fast path
    text = dump_policy(policy)              # canonical YAML; parses back to an equal policy
"""

from bayctl.policy.compiler import PackedPolicy, compile_entries, compile_policy, pack_policy
from bayctl.policy.dump import dump_policy
from bayctl.policy.model import Policy, PortSpec, Rule
from bayctl.policy.parser import load_policy, parse_policy


def parse_and_pack(text, source="<string>"):
    """(Policy, PackedPolicy) of policy text: what a node agent does with each policy it gets."""
    policy = parse_policy(text, source=source)
    return policy, pack_policy(policy)


__all__ = [
    "PackedPolicy",
    "Policy",
    "PortSpec",
    "Rule",
    "compile_entries",
    "compile_policy",
    "dump_policy",
    "load_policy",
    "pack_policy",
    "parse_and_pack",
    "parse_policy",
]

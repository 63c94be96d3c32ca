"""bayctl.policy: the group-policy language (model, parser, compiler) and the map layouts.

    policy = load_policy("web.yaml")        # or parse_policy(text, source="<stdin>")
    entries = compile_policy(policy)        # [(layout.PolicyKey, layout.PolicyValue)]
    packed = pack_policy(policy)            # the same entries as bytes: the agent's fast path
    text = dump_policy(policy)              # canonical YAML; parses back to an equal policy
"""

import importlib

# Each name -> the module that defines it, imported on first use (PEP 562): `from bayctl.policy
# import layout` (the datapath's constants, which the CNI plugin needs) must not load YAML and
# the compiler, which the plugin never uses and pays for in every one of its processes.
_EXPORTS = {
    "PackedPolicy": "compiler", "compile_entries": "compiler", "compile_policy": "compiler",
    "pack_policy": "compiler", "dump_policy": "dump", "Policy": "model", "PortSpec": "model",
    "Rule": "model", "load_policy": "parser", "parse_policy": "parser",
}


_SUBMODULES = ("compiler", "diff", "dump", "layout", "model", "parser")


def __getattr__(name):
    if name in _SUBMODULES:  # `bayctl.policy.compiler` after a bare `import bayctl.policy`
        return importlib.import_module(f"bayctl.policy.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"bayctl.policy.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bayctl.policy' has no attribute {name!r}")


def parse_and_pack(text, source="<string>"):
    """(Policy, PackedPolicy) of policy text: what a node agent does with each policy it gets."""
    from bayctl.policy.compiler import pack_policy
    from bayctl.policy.parser import parse_policy

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

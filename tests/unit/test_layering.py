"""The layers of shared/DESIGN.md, checked on the import graph of bayctl's own source:

    cli -> create -> (image, providers, seed, verify) -> (cloud, node protocol) -> model

No module imports a package of a layer above its own (imports inside functions count too:
a lazy import is still a dependency), the pipeline talks to providers only through their
interface, and bayctl/create/ never asks which provider it has by name.
"""

import ast
import os
import re

import bayctl
from bayctl.providers import PROVIDERS

PACKAGE = os.path.dirname(os.path.abspath(bayctl.__file__))

# Top-level module or package of bayctl -> its layer (higher imports lower, never the reverse).
LAYERS = {
    # the records and facts everything shares
    "model": 0, "errors": 0, "atomicfile": 0, "gcpause": 0, "policy": 0, "share": 0,
    # reaching a cloud, a node's own side, the bay's description
    "cloud": 1, "node": 1, "spec": 1, "remote": 1,
    # what the pipeline drives
    "image": 2, "providers": 2, "seed": 2, "verify": 2, "observe": 2, "history": 2,
    # the pipeline, and how a policy reaches a bay (SSH seeding is create.seeding)
    "create": 3, "distribution": 3,
    # entry points
    "api": 4, "bay_policy": 4, "demo": 4, "cli": 4, "pytest_plugin": 4, "__init__": 4, "__main__": 4,
}
# The one door from the pipeline to the providers (a provider's own modules stay its own).
PROVIDER_INTERFACE = {"bayctl.providers", "bayctl.providers.base"}


def sources(root=PACKAGE):
    """(path relative to the package, path) of every module under `root`."""
    for directory, _, files in os.walk(root):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                yield os.path.relpath(path, root), path


def top_of(relpath):
    return relpath.split(os.sep)[0].removesuffix(".py")


def imports(path):
    """(line, module) of every `import bayctl.x` / `from bayctl.x import y` in the file."""
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            if node.module == "bayctl":  # `from bayctl import api`
                for alias in node.names:
                    yield node.lineno, f"bayctl.{alias.name}"


def upward_imports(files):
    found = []
    for rel, path in files:
        here = LAYERS.get(top_of(rel))
        for line, module in imports(path):
            parts = module.split(".")
            if here is None or parts[0] != "bayctl" or len(parts) < 2 or parts[1] not in LAYERS:
                continue
            if LAYERS[parts[1]] > here:
                found.append(f"bayctl/{rel}:{line} imports {module} (layer {LAYERS[parts[1]]} > {here})")
    return found


def provider_internals(files):
    """Imports from bayctl/create/ of a provider's own modules (not the interface)."""
    return [f"bayctl/{rel}:{line} imports {module}"
            for rel, path in files if top_of(rel) == "create"
            for line, module in imports(path)
            if module.startswith("bayctl.providers") and module not in PROVIDER_INTERFACE]


# `provider.name == ...`, `hasattr(ctx.provider, ...)`, `getattr(provider, ...)`
_BY_NAME = re.compile(r"provider\.name\s*(==|!=|\bin\b)|(has|get)attr\(\s*(\w+\.)?provider\b")


def _is_provider(node):
    return isinstance(node, ast.Name) and node.id == "provider" or \
        isinstance(node, ast.Attribute) and node.attr == "provider"


def provider_name_checks(files):
    """In bayctl/create/: a provider's name as a literal, a comparison of its `.name`, a
    hasattr/getattr on it, or a call of its private methods."""
    names = set(PROVIDERS)
    found = []
    for rel, path in files:
        if top_of(rel) != "create":
            continue
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        for node in ast.walk(ast.parse(text, path)):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"bayctl/{rel}:{node.lineno} names provider {node.value!r}")
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and _is_provider(node.value):
                found.append(f"bayctl/{rel}:{node.lineno} uses the provider's private {node.attr}")
        for number, line in enumerate(text.splitlines(), 1):
            if _BY_NAME.search(line):
                found.append(f"bayctl/{rel}:{number}: {line.strip()}")
    return found


def test_every_module_has_a_layer():
    unplaced = sorted({top_of(rel) for rel, _ in sources()} - set(LAYERS))
    assert not unplaced, f"place these in LAYERS of {__file__} (by what they import and who imports " \
                         f"them): {unplaced}"


def test_no_import_runs_up_a_layer():
    found = upward_imports(sources())
    assert not found, "\n".join(found)


def test_the_pipeline_reaches_providers_only_through_their_interface():
    found = provider_internals(sources())
    assert not found, "\n".join(found)


def test_create_never_asks_for_a_provider_by_name():
    found = provider_name_checks(sources())
    assert not found, "\n".join(found)


def test_the_checks_see_what_they_look_for(tmp_path):
    """The checks are not blind: what the review found (section 3.4, 2.1) is reported."""
    (tmp_path / "cloud").mkdir()
    (tmp_path / "cloud" / "stacks.py").write_text("from bayctl.providers.base import BayStatus\n")
    (tmp_path / "providers").mkdir()
    (tmp_path / "providers" / "local.py").write_text(
        "def f():\n    from bayctl.create.state import state_root\n")
    (tmp_path / "create").mkdir()
    (tmp_path / "create" / "pipeline.py").write_text(
        "def f(provider, ctx, state):\n"
        "    from bayctl.providers.local_net import bay_namespaces\n"
        "    if hasattr(provider, 'check'):\n        pass\n"
        "    ref = state.ref or (state.name if provider.name == 'local' else None)\n"
        "    known = getattr(ctx.provider, 'host_keys', None)\n"
        "    return provider._stack_ref(provider._cluster(ref))\n")
    files = list(sources(str(tmp_path)))
    assert [line.split(" imports ")[1].split(" ")[0] for line in upward_imports(files)] == \
        ["bayctl.create.state", "bayctl.providers.base"]
    assert provider_internals(files) == ["bayctl/create/pipeline.py:2 imports bayctl.providers.local_net"]
    found = provider_name_checks(files)
    assert sum("names provider 'local'" in line for line in found) == 1
    assert sum("private" in line for line in found) == 2
    assert sum(":3: if hasattr" in line or ":6: known = getattr" in line or ":5: ref =" in line
               for line in found) == 3


def test_each_cloud_client_library_stays_behind_its_module():
    """README's decision: python-magnumclient only in providers/magnum_api.py; python-heatclient
    only in cloud/ and the heat provider (its exception types); openstacksdk for the rest."""
    allowed = {"magnumclient": {os.path.join("providers", "magnum_api.py")},
               "heatclient": {os.path.join("cloud", "heat_client.py"), os.path.join("cloud", "stacks.py"),
                              os.path.join("cloud", "diagnosis.py"), os.path.join("providers", "heat.py")}}
    found = []
    for rel, path in sources():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        for node in ast.walk(tree):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for module in modules:
                library = module.split(".")[0]
                if library in allowed and rel not in allowed[library]:
                    found.append(f"bayctl/{rel}:{node.lineno} imports {module}")
    assert not found, "\n".join(found)

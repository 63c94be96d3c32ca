"""The data bayctl ships inside its package, found the same way in a checkout and a wheel.

    bayctl/share/heat_templates/   the heat provider's templates, environments, fragments
    bayctl/share/elements/         the diskimage-builder elements of the node image
    bayctl/share/policies/         the example group policies (`bayctl policy examples`)

Paths come from importlib.resources, never from the checkout's layout: an installed wheel
has no checkout around it. The folders are real directories on disk for both an editable
install and a wheel (DIB and Heat read them as folders), so `files()` is a plain path here.
"""

import importlib.resources
import os
from typing import Optional

from bayctl.errors import PolicyError

POLICY_SUFFIXES = (".yaml", ".yml")
POLICY_HELP = ("group policy: a file (bayctl/v1 GroupPolicy) or a shipped example's name "
               "(`bayctl policy examples`); a file of that name wins")


def share_dir(*parts: str) -> str:
    """The absolute path of bayctl/share/<parts> in the installed package."""
    return os.path.join(str(importlib.resources.files("bayctl.share")), *parts)


def heat_templates_dir() -> str:
    return share_dir("heat_templates")


def elements_dir() -> str:
    return share_dir("elements")


def policies_dir() -> str:
    return share_dir("policies")


def example_policies():
    """{name: path} of the shipped example policies (name = file name without .yaml)."""
    folder = policies_dir()
    return {os.path.splitext(entry)[0]: os.path.join(folder, entry)
            for entry in sorted(os.listdir(folder)) if entry.endswith(POLICY_SUFFIXES)}


def example_description(path: str) -> str:
    """The first sentence of a policy file's leading comment: what the example shows."""
    lines = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            lines.append(line.lstrip("#").strip())
    text = " ".join(line for line in lines if line)
    for end in (": ", ". "):
        text = text.split(end, 1)[0]
    return text.rstrip(".")


def policy_path(name_or_path: str, base_dir: Optional[str] = None) -> str:
    """A policy argument as an absolute file path: a file that exists wins, else a shipped
    example's name (`web-db`), else the path itself (its loader then says it cannot be read).

    Relative paths are relative to `base_dir` (default: the current directory). "-" (standard
    input) is returned as is. A bare word that is neither a file nor an example names them."""
    if name_or_path == "-":
        return name_or_path
    candidate = os.path.normpath(os.path.join(base_dir or os.getcwd(), os.path.expanduser(name_or_path)))
    if os.path.exists(candidate):
        return candidate
    examples = example_policies()
    if name_or_path in examples:
        return examples[name_or_path]
    if os.sep in name_or_path or name_or_path.endswith(POLICY_SUFFIXES):
        return candidate
    raise PolicyError(f"{name_or_path}: no such policy file, nor a shipped example "
                      f"({', '.join(examples)}; see `bayctl policy examples`)")

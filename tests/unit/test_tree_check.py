"""The session refuses to test another checkout's code (tests/harness/tree_check.py)."""

import os
import sys

from harness.tree_check import TREE, foreign_code


def test_this_tree_is_what_runs():
    assert foreign_code() is None


def test_an_executable_of_another_checkout_on_path_is_named(tmp_path, monkeypatch):
    # Another checkout: a real Python that imports a `bayctl` package from elsewhere, and a
    # console script of it first on PATH, as an editable install of that checkout leaves.
    other = tmp_path / "other-checkout"
    (other / "bayctl").mkdir(parents=True)
    (other / "bayctl" / "__init__.py").write_text("")
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={other} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "bayctl-cni"
    script.write_text(f"#!{python}\nfrom bayctl.node.cni import main\nmain()\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    problem = foreign_code()
    assert problem == f"{script} runs bayctl from {other / 'bayctl'}, not from this tree ({TREE})"

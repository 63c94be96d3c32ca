"""The tests exercise the code of the tree they are in, or refuse to start.

Tests run bayctl's executables (`bayctl`, `bayctl-cni`, `bayctl-agent`,
`bayctl-docker-plugin`) from the bin directory of the Python running them (as local bay
nodes do) or from PATH. With an editable install of ANOTHER checkout there, every such
test would silently exercise that checkout's code. So at session start each executable,
and the `bayctl` package of this process, must resolve to this tree.
"""

import os
import shutil
import subprocess
import sys

from harness.paths import REPO as TREE

PACKAGE = os.path.join(TREE, "bayctl")
EXECUTABLES = ("bayctl", "bayctl-cni", "bayctl-agent", "bayctl-docker-plugin")


def _package_dir_of(script):
    """The `bayctl` package directory the interpreter of a console script imports."""
    with open(script, "rb") as handle:
        first = handle.readline().decode(errors="replace").strip()
    interpreter = first[2:].strip().split()[0] if first.startswith("#!") else sys.executable
    done = subprocess.run([interpreter, "-c", "import bayctl, os; print(os.path.dirname(bayctl.__file__))"],
                          cwd="/", capture_output=True, text=True, timeout=60)
    return done.stdout.strip() if done.returncode == 0 else None


def foreign_code():
    """One line naming what would run code from outside this tree, or None."""
    import bayctl
    own = os.path.realpath(os.path.dirname(bayctl.__file__))
    if own != os.path.realpath(PACKAGE):
        return f"this Python imports bayctl from {own}, not from this tree ({TREE})"
    for name in EXECUTABLES:
        # Local bay nodes look next to sys.executable first; other tests use PATH.
        scripts = {shutil.which(name, path=os.path.dirname(sys.executable)), shutil.which(name)}
        for script in sorted(filter(None, scripts)):  # a missing one: its tests say so (prereq)
            found = _package_dir_of(script)
            if found is None or os.path.realpath(found) != os.path.realpath(PACKAGE):
                return f"{script} runs bayctl from {found or 'nowhere'}, not from this tree ({TREE})"
    return None

"""A `bayctl-cni` that is guaranteed to run THIS tree's plugin (not whatever PATH finds).

Runtimes find a CNI plugin by its file name in a plugin directory; a console script there could
belong to another checkout's editable install. The wrapper runs this interpreter in isolated
mode with the tree first on sys.path, and refuses (CNI error JSON) if bayctl still comes from
elsewhere.
"""

import json
import os
import shlex
import sys

from harness.paths import REPO as TREE


def write_tree_cni(directory, name="bayctl-cni"):
    """Write the wrapper as `directory/name` (mode 0755) and return its path."""
    package = os.path.join(TREE, "bayctl")
    refusal = json.dumps({"cniVersion": "1.0.0", "code": 199, "msg": "bayctl is not this tree's"})
    code = (f"import sys, os; sys.path.insert(0, {TREE!r}); import bayctl; "
            f"ok = os.path.realpath(os.path.dirname(bayctl.__file__)) == os.path.realpath({package!r}); "
            f"ok or (print({refusal!r}), sys.exit(1)); "
            "from bayctl.node.cni import main; sys.exit(main())")
    path = os.path.join(directory, name)
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nexec {sys.executable} -I -c {shlex.quote(code)}\n")
    os.chmod(path, 0o755)
    return path


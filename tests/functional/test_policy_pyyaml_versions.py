"""The policy parser's own guards fire first whatever PyYAML the user has.

PyYAML 6.0.4's wheels bundle libyaml 0.2.6, whose scanner stops a run of '[' at its own
nesting limit before the parser's events reach bayctl's MAX_DEPTH: `test_deep_nesting`
passed on 6.0.3 and gave PyYAML's "exceeded maximum nesting depth" on 6.0.4. So the
oldest and the newest PyYAML bayctl supports each get a small virtualenv of their own
(cached under /var/cache/bayctl-ci), and the parser of THIS tree runs in it.
"""

import json
import os
import subprocess
import sys
import venv

import pytest
from harness.prereq import IN_CI

TREE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("BAYCTL_CI_CACHE", "/var/cache/bayctl-ci")

# The floor in pyproject/setup (6.0: the first with wheels for every Python bayctl
# supports; 5.4.1 has none for 3.11 and does not build with Cython 3) and the newest
# release known when this was written. Raise NEWEST when PyYAML releases.
OLDEST, NEWEST = "6.0", "6.0.4"

PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import yaml
from bayctl.errors import PolicyError
from bayctl.policy.parser import parse_policy
out = {"version": yaml.__version__, "yaml_file": yaml.__file__, "c_loader": hasattr(yaml, "CSafeLoader")}
cases = {"flow": "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
         "block": "".join("  " * i + "k:\n" for i in range(40)) + "  " * 40 + "v: 1\n"}
for name, text in cases.items():
    try:
        parse_policy(text, source="deep.yaml")
        out[name] = "accepted"
    except PolicyError as err:
        out[name] = str(err)
    except Exception as err:  # anything but PolicyError is the bug this test is for
        out[name] = f"{type(err).__name__}: {err}"
print(json.dumps(out))
"""


def _pyyaml_venv(version):
    path = os.path.join(CACHE, f"pyyaml-{version}")
    python = os.path.join(path, "bin", "python")
    ready = os.path.join(path, ".ready")
    if not os.path.exists(ready):
        venv.create(path, clear=True, with_pip=True)
        done = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               "--only-binary=:all:", f"PyYAML=={version}"],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            msg = f"cannot install PyYAML {version}: {done.stderr.strip().splitlines()[-1:]}"
            if IN_CI:
                pytest.fail(msg, pytrace=False)
            pytest.skip(msg)
        open(ready, "w").close()
    return python


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
def test_bayctl_nesting_limit_fires_first(version):
    python = _pyyaml_venv(version)
    done = subprocess.run([python, "-I", "-c", PROBE, TREE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["version"] == version and out["yaml_file"].startswith(os.path.join(CACHE, f"pyyaml-{version}"))
    assert out["flow"] == "deep.yaml:1: nested more than 32 levels deep"
    assert out["block"].startswith("deep.yaml:") and out["block"].endswith("nested more than 32 levels deep")
    assert sys.executable != python

"""The tier's own virtualenv: keystone, glance and heat from PyPI, kept apart from bayctl's.

Built once per machine under /var/cache/bayctl-ci (or $BAYCTL_CLOUD_VENV) and reused while
its requirements stay the same; `.ci/run` on a fresh machine builds it through
tools/setup.d/50-cloud.sh, and the session fixture builds it too if it is missing.
"""

import hashlib
import os
import shutil
import subprocess
import sys

# The services the tier runs, pinned: the tests state which releases they are real against.
REQUIREMENTS = [
    "keystone==30.0.0",
    "glance==33.0.0",
    "openstack-heat==27.0.1",
    "PyMySQL>=1.1",
]

DEFAULT_VENV = "/var/cache/bayctl-ci/cloud-venv"


def venv_path():
    return os.environ.get("BAYCTL_CLOUD_VENV", DEFAULT_VENV)


def _stamp():
    return hashlib.sha256("\n".join(REQUIREMENTS + [sys.version]).encode()).hexdigest()[:16]


def python():
    return os.path.join(venv_path(), "bin", "python")


def is_ready():
    try:
        with open(os.path.join(venv_path(), ".bayctl-stamp")) as f:
            return f.read().strip() == _stamp()
    except OSError:
        return False


def ensure_venv(log=sys.stderr):
    """Build the virtualenv unless an up-to-date one exists; return its python."""
    if is_ready():
        return python()
    final = venv_path()
    building = final + ".building"
    shutil.rmtree(building, ignore_errors=True)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", building], check=True)
    subprocess.run([os.path.join(building, "bin", "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", *REQUIREMENTS], check=True, stdout=log, stderr=log)
    with open(os.path.join(building, ".bayctl-stamp"), "w") as f:
        f.write(_stamp())
    # Built beside the final path and renamed: an interrupted build never looks ready.
    # (Everything is run as `python -m`/`python -c`, so the scripts' shebangs don't matter.)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(building, final)
    return python()


if __name__ == "__main__":  # tools/setup.d/50-cloud.sh: build it now, not in the first test
    print(ensure_venv())

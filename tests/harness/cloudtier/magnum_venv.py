"""REAL Magnum's own virtualenv: Magnum 10.0.0 (Ussuri), the last release that creates Mesos clusters.

What later releases do with coe=mesos (15.0.2 and 13.1.1 run here against the real tier; the
others read from their templates):
- 14.0.0 (Yoga) .. 15.0.2 (Zed): the API refuses it, "Requested COE type mesos is not
  supported." (upstream ab1ebed7 "Remove mesos API validation"), although the mesos_ubuntu_v1
  driver stayed in the tree until 16.0.0 removed it;
- 10.1.0 .. 13.1.1: the API takes the template and the cluster, but every cluster ends
  CREATE_FAILED before Heat creates anything: "Property error: resources.api_lb.properties:
  Property allowed_cidrs not assigned". The k8s change 'master_lb_allowed_cidrs' (3b87c5cc,
  backported to 10.1.0 as 57aab5a0) made `allowed_cidrs` a required parameter of the shared
  common/templates/lb_api.yaml, and mesoscluster.yaml never passes it;
- 10.0.0: the whole path works (template, cluster, stack from its own templates, status and
  addresses synced back, delete).
Magnum 10 needs its release's libraries (oslo.db 8, SQLAlchemy 1.3, eventlet 0.26, greenlet
0.4: none for Python 3.11), pinned in magnum-constraints.txt from openstack/requirements'
Ussuri upper-constraints, on Python 3.8 (which pyenv has on this machine). It is kept apart
from the tier's keystone/glance/heat virtualenv.

Built once per machine under /var/cache/bayctl-ci/magnum-venv (or $BAYCTL_MAGNUM_VENV) and
reused while the pins and the interpreter stay the same; tools/setup.d/55-magnum.sh builds it
for CI, and the `magnum_real` fixture builds it if it is missing.
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONSTRAINTS = os.path.join(HERE, "magnum-constraints.txt")
MAGNUM_RELEASE = "10.0.0"
REQUIREMENTS = [f"magnum=={MAGNUM_RELEASE}", "PyMySQL"]
PYTHON_VERSION = "3.8"
DEFAULT_VENV = "/var/cache/bayctl-ci/magnum-venv"


class MagnumVenvError(RuntimeError):
    pass


def venv_path():
    return os.environ.get("BAYCTL_MAGNUM_VENV", DEFAULT_VENV)


def python():
    return os.path.join(venv_path(), "bin", "python")


def base_python():
    """A Python 3.8 to build the venv with: $BAYCTL_MAGNUM_PYTHON, pyenv's 3.8, or python3.8 on PATH."""
    explicit = os.environ.get("BAYCTL_MAGNUM_PYTHON")
    if explicit:
        return explicit
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(os.path.join(root, "versions", f"{PYTHON_VERSION}.*", "bin", "python")))
    if candidates:
        return candidates[-1]
    found = shutil.which(f"python{PYTHON_VERSION}")
    if found and "/shims/" not in found:  # a pyenv shim of a version not selected does not run
        return found
    raise MagnumVenvError(f"Magnum {MAGNUM_RELEASE} needs Python {PYTHON_VERSION} (its release's libraries) "
                          "and none was found (pyenv's, python3.8 on PATH, or $BAYCTL_MAGNUM_PYTHON)")


def _stamp(base):
    with open(CONSTRAINTS, "rb") as f:
        pins = f.read()
    version = subprocess.run([base, "-c", "import sys; print(sys.version)"], capture_output=True,
                             text=True, check=True).stdout
    return hashlib.sha256(pins + "\n".join(REQUIREMENTS).encode() + version.encode()).hexdigest()[:16]


def is_ready(base=None):
    try:
        with open(os.path.join(venv_path(), ".bayctl-stamp")) as f:
            return f.read().strip() == _stamp(base or base_python())
    except (OSError, MagnumVenvError):
        return False


def ensure_venv(log=sys.stderr):
    """Build the virtualenv unless an up-to-date one exists; return its python."""
    base = base_python()
    if is_ready(base):
        return python()
    final = venv_path()
    building = final + ".building"
    shutil.rmtree(building, ignore_errors=True)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    subprocess.run([base, "-m", "venv", building], check=True)
    subprocess.run([os.path.join(building, "bin", "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", "-c", CONSTRAINTS, *REQUIREMENTS],
                   check=True, stdout=log, stderr=log)
    with open(os.path.join(building, ".bayctl-stamp"), "w") as f:
        f.write(_stamp(base))
    # Renamed into place only when complete: an interrupted build never looks ready. The
    # services are run as `python -c`/`python -m`, so the scripts' shebang paths don't matter.
    shutil.rmtree(final, ignore_errors=True)
    os.rename(building, final)
    return python()


if __name__ == "__main__":  # tools/setup.d/55-magnum.sh: build it now, not in the first test
    print(ensure_venv())

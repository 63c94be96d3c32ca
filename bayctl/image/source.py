"""bayctl's node side for the image: a wheelhouse built from this checkout.

The bayctl-node element installs, offline, from a folder holding bayctl's wheel (with the
datapath object `make -C policy` compiled into bayctl/node/bpf/) and the wheels of its
"node" dependencies. The checkout is copied first so that building never writes into the
working tree (build/, egg-info), and the copy's digest names the wheelhouse in the cache.
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

from bayctl.errors import ImageError
from bayctl.image.elements import tree_digest

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What a wheel of bayctl is built from; everything else in the checkout is not shipped.
SOURCE_PARTS = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "bayctl", "policy")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.o", "*.egg-info", "build")


def is_checkout(path=CHECKOUT):
    return os.path.isfile(os.path.join(path, "setup.py")) and os.path.isdir(os.path.join(path, "policy"))


def checkout_digest(path=CHECKOUT):
    """sha256 over the files a wheel of bayctl is built from."""
    parts = [p for p in SOURCE_PARTS if os.path.exists(os.path.join(path, p))]
    return tree_digest_many(path, parts)


def tree_digest_many(root, parts):
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() + b"\0" + tree_digest(os.path.join(root, part)).encode())
    return digest.hexdigest()


def wheelhouse(cache_dir, log, path=CHECKOUT):
    """A folder of wheels for bayctl[node] built from the checkout at `path` (cached by digest)."""
    if not is_checkout(path):
        raise ImageError(f"{path} is not a bayctl checkout (no setup.py and policy/): "
                         "pass the node packages with --bayctl-source")
    digest = checkout_digest(path)
    house = os.path.join(cache_dir, "bayctl-wheelhouse", digest[:16])
    if _complete(house):
        return house
    os.makedirs(os.path.dirname(house), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".building-", dir=os.path.dirname(house))
    try:
        with tempfile.TemporaryDirectory(prefix="bayctl-source-") as copy:
            for part in SOURCE_PARTS:
                src = os.path.join(path, part)
                if os.path.isdir(src):
                    shutil.copytree(src, os.path.join(copy, part), ignore=_SKIP)
                elif os.path.isfile(src):
                    shutil.copy2(src, os.path.join(copy, part))
            # The datapath object first: a clear error here beats a wheel without it.
            _run(["make", "-C", os.path.join(copy, "policy")], log, "compiling the datapath (make -C policy)")
            _run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--quiet",
                  "--wheel-dir", staging, copy + "[node]"], log, "building bayctl's wheels (pip wheel)")
        check_wheelhouse(staging)
        shutil.rmtree(house, ignore_errors=True)
        os.rename(staging, house)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return house


def check_wheelhouse(folder):
    """bayctl's wheel must carry the datapath object and the node's console scripts."""
    wheels = glob.glob(os.path.join(folder, "bayctl-*.whl"))
    if len(wheels) != 1:
        raise ImageError(f"{folder}: expected one bayctl wheel, found {len(wheels)}")
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        if not any(n.startswith("bayctl/node/bpf/") and n.endswith(".bpf.o") for n in names):
            raise ImageError(f"{os.path.basename(wheels[0])} has no datapath object "
                             "(bayctl/node/bpf/*.bpf.o): `make -C policy` built none")
        entry_points = next((n for n in names if n.endswith(".dist-info/entry_points.txt")), None)
        scripts = wheel.read(entry_points).decode() if entry_points else ""
    missing = [s for s in ("bayctl-agent", "bayctl-docker-plugin", "bayctl-cni") if f"{s} =" not in scripts]
    if missing:
        raise ImageError(f"{os.path.basename(wheels[0])} lacks the console scripts {', '.join(missing)}")


def _complete(house):
    try:
        check_wheelhouse(house)
        return True
    except ImageError:
        return False


def _run(argv, log, what):
    log.write(f"# {what}: {' '.join(argv)}\n")
    log.flush()
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise ImageError(f"{what} failed (exit {result.returncode}); see {log.name}")

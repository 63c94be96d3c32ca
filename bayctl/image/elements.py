"""Elements: where they are, what they expand to, which element owns which script.

DIB merges the phase scripts of all elements into one folder per phase, so its output
names a script (`install.d/60-bayctl-node-install`) but not its element: the map built
here turns a script back into the element a user can act on.
"""

import hashlib
import os

from bayctl import share
from bayctl.errors import ImageError

try:
    import diskimage_builder
    from diskimage_builder import element_dependencies
except ImportError:  # the CLI says so when a build is asked for
    diskimage_builder = element_dependencies = None

# bayctl's own elements, shipped in the package (bayctl/share/elements).
BAYCTL_ELEMENTS_DIR = share.elements_dir()
DIB_ELEMENTS_DIR = (os.path.join(os.path.dirname(diskimage_builder.__file__), "elements")
                    if diskimage_builder else "")

# Folders of an element that are not phases.
_NOT_PHASES = {"environment.d", "static"}


def elements_path(extra_dirs=()):
    """ELEMENTS_PATH for DIB: the caller's folders first (they override), then bayctl's."""
    dirs = [os.path.abspath(d) for d in extra_dirs]
    if os.path.isdir(BAYCTL_ELEMENTS_DIR):
        dirs.append(BAYCTL_ELEMENTS_DIR)
    for d in dirs:
        if not os.path.isdir(d):
            raise ImageError(f"elements folder {d} does not exist")
    return dirs


def dib_defaults(element_names):
    """The elements disk-image-create adds itself: `base`, and an MBR layout for `vm` (amd64)."""
    names = ["base", *element_names]
    if "vm" in names and not any(n.startswith("block-device-") for n in names):
        names.append("block-device-mbr")
    return names


def resolve(element_names, search_dirs):
    """[(name, path)] of the elements and all their dependencies, or ImageError naming the gap."""
    if element_dependencies is None:
        raise ImageError("diskimage-builder is not installed: pip install 'bayctl[image]'")
    paths = ":".join([*search_dirs, DIB_ELEMENTS_DIR])
    try:
        return element_dependencies.get_elements(dib_defaults(element_names), paths)
    except element_dependencies.MissingElementException as e:
        raise ImageError(f"{e} (searched {paths})") from None
    except element_dependencies.MissingOSException as e:
        raise ImageError(f"no operating-system element: {e}") from None
    except element_dependencies.AlreadyProvidedException as e:
        raise ImageError(f"conflicting elements: {e}") from None


def is_dib_builtin(path):
    return os.path.realpath(path).startswith(os.path.realpath(DIB_ELEMENTS_DIR) + os.sep)


def script_owners(resolved):
    """{"install.d/60-x": element} for every phase script of the resolved elements."""
    owners = {}
    for name, path in resolved:
        for phase in sorted(os.listdir(path)):
            folder = os.path.join(path, phase)
            if not phase.endswith(".d") or phase in _NOT_PHASES or not os.path.isdir(folder):
                continue
            for script in os.listdir(folder):
                owners[f"{phase}/{script}"] = name
    return owners


def tree_digest(path):
    """sha256 over a folder's relative paths, modes and contents (or one file's)."""
    digest = hashlib.sha256()
    if os.path.isfile(path):
        _add_file(digest, path, os.path.basename(path))
        return digest.hexdigest()
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".git"))
        for name in sorted(files):
            if name.endswith((".pyc", ".o")):
                continue
            full = os.path.join(root, name)
            _add_file(digest, full, os.path.relpath(full, path))
    return digest.hexdigest()


def _add_file(digest, full, relative):
    digest.update(relative.encode() + b"\0")
    if os.path.islink(full):
        digest.update(b"link:" + os.readlink(full).encode() + b"\0")
        return
    digest.update(b"x" if os.access(full, os.X_OK) else b"-")
    with open(full, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    digest.update(b"\0")

"""The inputs digest of a build and the record kept beside the image.

The digest covers everything that decides the image's content: the elements' files (bayctl's
and the caller's; DIB's own through DIB's version), the DIB_* settings (a setting naming a
file or folder counts by that file's content, not its path), the bayctl source, the
distro/release/format. It leaves out what only changes how fast or where the build runs
(the cache folder, tracing). Repositories named by URL count by their URL: use --force to
pick up new packages behind an unchanged URL.

The record (`<image>.inputs.json`) holds the digest and the image's size and mtime, so an
unchanged request finds its image without running DIB. It holds setting NAMES only: values
may carry credentials (a repository URL with a password).
"""

import hashlib
import json
import os
import tempfile

# Settings that change how or where the build runs, not what it produces.
NOT_INPUTS = frozenset({
    "DIB_IMAGE_CACHE", "DIB_DEBUG_TRACE", "DIB_QUIET", "DIB_NO_TMPFS", "DIB_MIN_TMPFS",
    "DIB_SHOW_IMAGE_USAGE", "DIB_BAYCTL_SOURCE", "DIB_DEBOOTSTRAP_CACHE", "DIB_DEBIAN_USE_DEBOOTSTRAP_CACHE",
})

SCHEMA = "bayctl-image-inputs/1"


def setting_value(value, tree_digest):
    """A setting as it counts for the digest: a path to something that exists counts by content."""
    path = value[len("file://"):] if value.startswith("file://") else value
    if os.path.isabs(path) and os.path.exists(path):
        return "content:" + tree_digest(path)
    return value


def inputs_digest(inputs):
    """sha256 of the canonical JSON of `inputs` (a dict of plain values)."""
    canonical = json.dumps({"schema": SCHEMA, **inputs}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_path(image_path):
    return image_path + ".inputs.json"


def read_record(image_path):
    try:
        with open(record_path(image_path), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def image_matches(image_path, record, digest):
    """True if `image_path` is the image `record` describes and was built from `digest`."""
    if not record or record.get("inputs_digest") != digest:
        return False
    try:
        st = os.stat(image_path)
    except OSError:
        return False
    return st.st_size == record.get("size") and st.st_mtime_ns == record.get("mtime_ns")


def write_record(image_path, record):
    """Atomically: a reader sees the old record or the new one, never half of one."""
    st = os.stat(image_path)
    record = {**record, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    folder = os.path.dirname(os.path.abspath(image_path))
    fd, tmp = tempfile.mkstemp(prefix=".record-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, sort_keys=True)
            f.write("\n")
        os.rename(tmp, record_path(image_path))
    except BaseException:
        os.unlink(tmp)
        raise
    return record


def drop_record(image_path):
    try:
        os.unlink(record_path(image_path))
    except FileNotFoundError:
        pass


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

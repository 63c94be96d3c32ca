"""Glance images: upload a built image once, find it again by what it was built from.

Each image bayctl uploads carries `bayctl_build_inputs` (a digest of the build's inputs, the
file's sha256 by default) and `os_distro` (Magnum picks its driver by it). Uploading again with
the same inputs reuses the active image; an interrupted upload never leaves a half image
behind (the queued/killed record is deleted).
"""

import dataclasses
import hashlib
import logging
import os
import time

from bayctl.errors import ImageError

LOG = logging.getLogger(__name__)

INPUTS_PROPERTY = "bayctl_build_inputs"
DISK_FORMATS = {".qcow2": "qcow2", ".img": "raw", ".raw": "raw", ".vmdk": "vmdk", ".vdi": "vdi",
                ".iso": "iso", ".vhd": "vhd"}


@dataclasses.dataclass
class UploadResult:
    image: object  # openstack.image.v2.image.Image
    reused: bool


def file_digest(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def build_inputs_of(image):
    props = getattr(image, "properties", None) or {}
    return props.get(INPUTS_PROPERTY)


def find_by_inputs(conn, build_inputs):
    """Images whose recorded build inputs equal `build_inputs` (Glance filters on the property)."""
    return [i for i in conn.image.images(**{INPUTS_PROPERTY: build_inputs})
            if build_inputs_of(i) == build_inputs]


def _glance_error(e, name):
    import openstack.exceptions as sdk_exc

    status = getattr(e, "status_code", None)
    if status == 413 or "quota" in str(e).lower():
        return ImageError(f"image {name!r}: Glance refused the upload: storage quota exceeded "
                          "(delete unused images or ask for a larger quota)")
    if status == 415:  # Glance inspects the data: "Image disk_format qcow2 does not match stream data raw"
        body = getattr(getattr(e, "response", None), "text", "") or str(e)
        detail = [line.strip() for line in body.splitlines() if line.strip()][-1]
        return ImageError(f"image {name!r}: Glance refused the data: {detail[:200]}")
    if status == 403 or isinstance(e, sdk_exc.ForbiddenException):
        return ImageError(f"image {name!r}: not permitted to upload images in this project "
                          "(the user needs the member role)")
    return ImageError(f"image {name!r}: Glance upload failed: {str(e).splitlines()[0][:300]}")


def _delete_quietly(conn, image, attempts=15, pause=1.0):
    """Delete a half-made image. Right after an aborted upload Glance may still be busy with it
    (it answers 409/500 until its side of the transfer ends), so try for a while."""
    last = None
    for attempt in range(attempts):
        try:
            conn.image.delete_image(image, ignore_missing=True)
            return
        except Exception as e:  # the original error matters more; retry, then say the leftover exists
            last = e
            time.sleep(pause * min(attempt + 1, 3))
    LOG.warning("could not delete the partial image %s: %s", image.id, last)


def upload_image(conn, path, *, name, disk_format=None, container_format="bare", os_distro="debian",
                 build_inputs=None, properties=None, timeout=600, wait_interval=2):
    """Upload `path` as image `name` (or reuse the image built from the same inputs)."""
    import keystoneauth1.exceptions as ksa_exc
    import openstack.exceptions as sdk_exc

    if not os.path.isfile(path):
        raise ImageError(f"{path}: no such image file")
    disk_format = disk_format or DISK_FORMATS.get(os.path.splitext(path)[1], "qcow2")
    build_inputs = build_inputs or file_digest(path)

    try:
        existing = find_by_inputs(conn, build_inputs)
    except sdk_exc.SDKException as e:
        raise _glance_error(e, name) from None
    for image in existing:
        if image.status == "active":
            LOG.info("reusing image %s (%s): same build inputs", image.name, image.id)
            return UploadResult(image, reused=True)
        if image.status in ("queued", "killed", "saving", "uploading", "importing"):
            # Left over by an upload that died (ours, earlier): never build on it.
            LOG.info("deleting unfinished image %s (%s, %s)", image.name, image.id, image.status)
            _delete_quietly(conn, image)

    attrs = {"name": name, "disk_format": disk_format, "container_format": container_format,
             "os_distro": os_distro, "visibility": "private", INPUTS_PROPERTY: build_inputs,
             **(properties or {})}
    try:
        image = conn.image.create_image(allow_duplicates=True, **attrs)
    except sdk_exc.SDKException as e:
        raise _glance_error(e, name) from None
    try:
        with open(path, "rb") as data:
            response = image.upload(conn.image, data=data, size=os.path.getsize(path))
        sdk_exc.raise_from_response(response)
        image = conn.image.wait_for_status(conn.image.get_image(image), "active", failures=["killed"],
                                           interval=wait_interval, wait=timeout)
    except BaseException as e:  # interrupted, refused or timed out: leave nothing half-made
        _delete_quietly(conn, image)
        if isinstance(e, ksa_exc.ConnectionError):  # our side stopped sending (read error, killed)
            cause = e.__context__ or e
            raise ImageError(f"image {name!r}: upload interrupted ({str(cause)[:200]}); the partial image "
                             "was deleted") from None
        if isinstance(e, sdk_exc.ResourceTimeout):
            raise ImageError(f"image {name!r}: not active after {timeout:.0f}s; the partial image was "
                             "deleted") from None
        if isinstance(e, sdk_exc.ResourceFailure):
            raise ImageError(f"image {name!r}: Glance marked the upload killed; the partial image was "
                             "deleted") from None
        if isinstance(e, sdk_exc.SDKException):
            raise _glance_error(e, name) from None
        if isinstance(e, OSError):
            raise ImageError(f"image {name!r}: upload interrupted ({e}); the partial image was deleted") \
                from None
        raise
    return UploadResult(image, reused=False)

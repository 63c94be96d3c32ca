"""Upload a built image to Glance, tagged with its inputs digest so it is uploaded once.

The Glance side (find by property, upload, clean up a failed upload) is bayctl.cloud.images;
this module only says what a node image is: os_distro from the distro element, and the
build's inputs digest as the image's `bayctl_build_inputs` property.
"""

from bayctl.errors import ImageError

# The distro element -> Glance's os_distro (Magnum picks its driver by it).
OS_DISTRO = {"debian-minimal": "debian", "debian": "debian", "ubuntu-minimal": "ubuntu", "ubuntu": "ubuntu"}


def inputs_property(image):
    return f"bayctl-image:{image.inputs_digest}"


def upload(conn, image, name, os_distro=None, timeout=600):
    """Upload ImageBuild `image` as `name` (or find the one uploaded from the same inputs)."""
    try:
        from bayctl.cloud import images
    except ImportError as e:
        raise ImageError(f"--upload needs openstacksdk, a dependency of bayctl (pip install bayctl): {e}") \
            from None
    return images.upload_image(conn, image.path, name=name, disk_format=image.image_format,
                               os_distro=os_distro or OS_DISTRO.get(image.distro, image.distro),
                               build_inputs=inputs_property(image), timeout=timeout)

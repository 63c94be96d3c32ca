"""Node images: bayctl's diskimage-builder elements (bayctl/share/elements/) built by one library call.

    from bayctl.image import ImageRequest, build
    image = build(ImageRequest(output="bayctl-mesos.qcow2",
                               env={"DIB_MESOS_APT_REPO": "http://repo.example/mesos"}))

See builder.py for the steps; `bayctl image build` is the CLI.
"""

from bayctl.image.builder import DEFAULT_ELEMENTS, FORMATS, ImageBuild, ImageRequest, build

__all__ = ["DEFAULT_ELEMENTS", "FORMATS", "ImageBuild", "ImageRequest", "build"]

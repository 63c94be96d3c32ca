"""`bayctl image build`: the node image in one command (diskimage-builder underneath)."""

import os
import time

from cliff.show import ShowOne

from bayctl.cli.os_options import OpenStackCommand
from bayctl.errors import ImageError


class Build(OpenStackCommand, ShowOne):
    """Build the Mesos node image (bayctl-node + mesos elements), reusing it if nothing changed.

    Mesos is packaged by no distribution: give its packages with --mesos-apt-repo and/or
    --mesos-deb-dir (see bayctl/share/elements/mesos/README.rst). Mirrors default to this machine's
    apt sources; the whole DIB output goes to the log file (default IMAGE.log).
    """

    def get_parser(self, prog_name):
        from bayctl.image.builder import DEFAULT_DISTRO, DEFAULT_ELEMENTS, DEFAULT_RELEASE, FORMATS

        parser = super().get_parser(prog_name)
        parser.add_argument("-o", "--output", default=None, metavar="PATH",
                            help="image file to write (default: ./bayctl-mesos-RELEASE.FORMAT)")
        parser.add_argument("--distro", default=DEFAULT_DISTRO,
                            help=f"distro element (default {DEFAULT_DISTRO})")
        parser.add_argument("--release", default=DEFAULT_RELEASE,
                            help=f"DIB_RELEASE (default {DEFAULT_RELEASE})")
        parser.add_argument("--element", action="append", default=None, metavar="NAME",
                            help="element to build with, repeatable; replaces the default list "
                                 f"({' '.join(DEFAULT_ELEMENTS)})")
        parser.add_argument("--extra-element", action="append", default=[], metavar="NAME",
                            help="element added to the list, repeatable")
        parser.add_argument("--elements-path", action="append", default=[], metavar="DIR",
                            help="folder of more elements, searched before bayctl's own; repeatable")
        parser.add_argument("--image-format", default="qcow2", choices=FORMATS,
                            help="qcow2 (default) or raw")
        parser.add_argument("--no-compress", action="store_true", help="do not compress the qcow2 (faster)")
        parser.add_argument("--cache-dir", default=None,
                            help="DIB_IMAGE_CACHE (default: $DIB_IMAGE_CACHE or ~/.cache/image-create)")
        parser.add_argument("--mirror", default=None, metavar="URL",
                            help="DIB_DISTRIBUTION_MIRROR (default: this machine's apt sources)")
        parser.add_argument("--security-mirror", default=None, metavar="URL",
                            help="DIB_DEBIAN_SECURITY_MIRROR (default: the mirror's host + /debian-security)")
        parser.add_argument("--mesos-apt-repo", default=None, metavar="URL|LINE",
                            help="DIB_MESOS_APT_REPO: apt repository with mesos and marathon")
        parser.add_argument("--mesos-apt-key", default=None, metavar="FILE", help="DIB_MESOS_APT_KEY")
        parser.add_argument("--mesos-deb-dir", default=None, metavar="DIR",
                            help="DIB_MESOS_DEB_DIR: folder of .deb files (mesos, marathon, ...)")
        parser.add_argument("--set", action="append", default=[], metavar="DIB_KEY=VALUE",
                            help="any other DIB_* setting, repeatable")
        parser.add_argument("--bayctl-source", default=None, metavar="PATH",
                            help="bayctl's node packages: a folder of wheels, or a wheel/sdist "
                                 "(default: built from this checkout)")
        parser.add_argument("--log-file", default=None,
                            help="where DIB's whole output goes (default IMAGE.log)")
        parser.add_argument("--force", action="store_true", help="build even if the inputs did not change")
        parser.add_argument("--quiet", action="store_true", help="no progress lines")
        parser.add_argument("--upload", action="store_true",
                            help="upload to Glance (once per inputs digest); takes the usual --os-* options")
        parser.add_argument("--image-name", "--name", dest="image_name", default=None,
                            help="Glance image name (default: the file's name)")
        parser.add_argument("--os-distro", default=None, help="Glance os_distro (default: from --distro)")
        return parser

    def take_action(self, args):
        from bayctl.image import ImageRequest, build
        from bayctl.image.builder import DEFAULT_ELEMENTS

        elements = tuple(args.element or DEFAULT_ELEMENTS) + tuple(args.extra_element)
        output = args.output or f"bayctl-mesos-{args.release}.{args.image_format}"
        request = ImageRequest(
            output=output, elements=elements, distro=args.distro, release=args.release,
            image_format=args.image_format, compress=not args.no_compress, cache_dir=args.cache_dir,
            env=settings(args), elements_dirs=tuple(args.elements_path), bayctl_source=args.bayctl_source,
            log_path=args.log_file, force=args.force,
        )
        if args.upload:
            from bayctl.cloud.connection import connect

            conn = connect()  # the --os-* options; before a long build: a refusal shows now
        image = build(request, on_step=None if args.quiet else self._progress())
        columns = ["path", "format", "reused", "seconds", "inputs_digest", "sha256", "size", "log"]
        values = [image.path, image.image_format, image.reused, image.seconds, image.inputs_digest,
                  image.sha256, image.size, image.log_path]
        if args.upload:
            from bayctl.image.upload import upload

            name = args.image_name or os.path.splitext(os.path.basename(image.path))[0]
            result = upload(conn, image, name, os_distro=args.os_distro)
            columns += ["glance_image", "glance_reused"]
            values += [result.image.id, result.reused]
        return columns, values

    def _progress(self):
        started = time.monotonic()
        stderr = self.app.stderr

        def show(step):
            from bayctl.image.progress import describe

            stderr.write(f"image: [{time.monotonic() - started:5.0f}s] {describe(step)}\n")
            stderr.flush()

        return show


def settings(args):
    """The DIB_* settings the options name (only those given)."""
    env = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("DIB_"):
            raise ImageError(f"--set {item!r}: expected DIB_KEY=VALUE")
        env[key] = value
    named = {
        "DIB_DISTRIBUTION_MIRROR": args.mirror, "DIB_DEBIAN_SECURITY_MIRROR": args.security_mirror,
        "DIB_MESOS_APT_REPO": args.mesos_apt_repo, "DIB_MESOS_DEB_DIR": args.mesos_deb_dir,
        "DIB_MESOS_APT_KEY": args.mesos_apt_key,
    }
    for key, value in named.items():
        if value is not None:
            if key in ("DIB_MESOS_DEB_DIR", "DIB_MESOS_APT_KEY"):
                if not os.path.exists(value):
                    raise ImageError(f"--{key[4:].lower().replace('_', '-')} {value}: no such file or folder")
                value = os.path.abspath(value)
            env[key] = value
    return env

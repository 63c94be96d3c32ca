"""Cloud verbs: images in Glance, pre-flight checks, stack diagnosis.

Each command parses the usual OpenStack options (`--os-cloud`, `--os-auth-url`, ... as
openstacksdk registers them; `OS_*` variables and clouds.yaml work as for any client) and
calls one library function.
"""

from cliff.lister import Lister
from cliff.show import ShowOne

from bayctl.cli.os_options import OpenStackCommand


class CloudCommand(OpenStackCommand):
    """Base: takes the --os-* options (bayctl.cli.os_options); `self.connect(args)` connects."""

    def connect(self, args):
        from bayctl.cloud.connection import connect

        return connect(options=self.os_options(args))


class ImageList(CloudCommand, Lister):
    """List Glance images with the properties bayctl sets (os_distro, build inputs)."""

    def take_action(self, args):
        from bayctl.cloud import images

        conn = self.connect(args)
        rows = [(i.id, i.name, i.status, i.os_distro or "", images.build_inputs_of(i) or "")
                for i in conn.image.images()]
        return ("ID", "Name", "Status", "os_distro", "Build inputs"), rows


class ImageUpload(CloudCommand, ShowOne):
    """Upload a built image to Glance, or reuse the image already built from the same inputs."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("file", help="image file (e.g. the qcow2 `bayctl image build` wrote)")
        parser.add_argument("--name", required=True, help="Glance image name")
        parser.add_argument("--disk-format", default=None,
                            help="qcow2, raw, ... (default: from the file name, else qcow2)")
        parser.add_argument("--container-format", default="bare")
        parser.add_argument("--os-distro", default="debian", help="os_distro property (Magnum needs it)")
        parser.add_argument("--inputs", default=None, metavar="DIGEST",
                            help="digest of the build's inputs (default: sha256 of the file)")
        parser.add_argument("--property", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--wait-timeout", type=float, default=600, help="seconds to wait for `active`")
        return parser

    def take_action(self, args):
        from bayctl.cloud import images
        from bayctl.errors import ImageError

        props = {}
        for item in args.property:
            if "=" not in item:
                raise ImageError(f"--property {item!r}: expected KEY=VALUE")
            key, value = item.split("=", 1)
            props[key] = value
        conn = self.connect(args)
        result = images.upload_image(conn, args.file, name=args.name, disk_format=args.disk_format,
                                     container_format=args.container_format, os_distro=args.os_distro,
                                     build_inputs=args.inputs, properties=props, timeout=args.wait_timeout)
        image = result.image
        return (("id", "name", "status", "os_distro", "build_inputs", "reused"),
                (image.id, image.name, image.status, image.os_distro, images.build_inputs_of(image),
                 result.reused))


class Preflight(CloudCommand, Lister):
    """Check the cloud can hold a bay before anything is created (keypair, image, flavor, quotas)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--image", required=True)
        parser.add_argument("--keypair", required=True)
        parser.add_argument("--master-flavor", required=True)
        parser.add_argument("--slave-flavor", default=None, help="default: the master flavor")
        parser.add_argument("--external-network", required=True)
        parser.add_argument("--slaves", type=int, default=1)
        return parser

    def take_action(self, args):
        from bayctl.cloud import preflight
        from bayctl.providers.base import BayRequest

        conn = self.connect(args)
        request = BayRequest(name="preflight", slaves=args.slaves, image=args.image, keypair=args.keypair,
                             master_flavor=args.master_flavor,
                             slave_flavor=args.slave_flavor or args.master_flavor,
                             external_network=args.external_network)
        checks = preflight.run_preflight(conn, request)  # raises CloudError listing every problem
        return ("Check", "Result"), [(c.name, c.detail) for c in checks]


class StackDiagnose(CloudCommand, Lister):
    """Name the deepest failed resources of a Heat stack, with their types and reasons."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("stack", help="stack name or id (for a Magnum cluster: its stack_id)")
        return parser

    def take_action(self, args):
        from bayctl.cloud import diagnosis

        conn = self.connect(args)
        failures = diagnosis.stack_failures(conn, args.stack)
        return (("Resource", "Type", "Status", "Reason"),
                [(f.path, f.resource_type, f.status, f.reason) for f in failures])

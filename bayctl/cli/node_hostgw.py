"""`bayctl node hostgw`: a cloud node's container subnet, CNI config and routes (run at boot)."""

from cliff.show import ShowOne

from bayctl.errors import NodeError


class HostGw(ShowOne):
    """Set up this node's container networking in a cloud bay (bayctl.node.hostgw).

    Derives the node's container subnet from its private address, writes the Mesos CNI
    network config for it (not with --no-cni), turns on forwarding and routes every other
    node's subnet via that node. Idempotent; run by the node's user data at boot.
    """

    def get_parser(self, prog_name):
        from bayctl.node import hostgw

        parser = super().get_parser(prog_name)
        parser.add_argument("--container-cidr", default=hostgw.DEFAULT_CONTAINER_CIDR,
                            help="the bay's container range (default %(default)s)")
        parser.add_argument("--private-cidr", default=hostgw.DEFAULT_PRIVATE_CIDR,
                            help="the bay's private network (default %(default)s)")
        parser.add_argument("--cni-dir", default=hostgw.DEFAULT_CNI_DIR,
                            help="where the CNI network config goes (default %(default)s)")
        parser.add_argument("--no-cni", action="store_true", help="routes only (the master)")
        return parser

    def take_action(self, parsed_args):
        from bayctl.node import hostgw

        try:
            done = hostgw.apply(parsed_args.container_cidr, parsed_args.private_cidr, parsed_args.cni_dir,
                                write_cni=not parsed_args.no_cni)
        except (OSError, hostgw.RangeError) as err:
            raise NodeError(str(err)) from None
        keys = ("address", "interface", "subnet", "cni_config", "routes")
        return keys, tuple(done[key] for key in keys)

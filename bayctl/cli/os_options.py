"""The OpenStack options of bayctl's commands, defined once (bayctl.cloud.connection, which
takes them from openstacksdk's own argparse helper).

Like the `openstack` client, bayctl takes `--os-cloud` and the `--os-*` options both before
the command (`bayctl --os-cloud x list`) and after it (`bayctl list --os-cloud x`); OS_*
variables and clouds.yaml fill in the rest. `--cloud` is kept as another spelling of
`--os-cloud`. A value given after the command wins over one given before it.

openstacksdk's option set costs ~0.4 s to build (it imports keystoneauth's plugin loaders),
and node commands run on every slave over SSH: so the full set is registered only when the
command line names an OpenStack option or asks for help. Without one, every option would
keep its default (None) anyway: what the command does is the same.
"""

import argparse

HELP_WORDS = ("-h", "--help", "help")
OS_OPTION_PREFIXES = ("--os-", "--insecure")


def mentions_os_options(argv):
    return any(arg.startswith(OS_OPTION_PREFIXES) or arg in HELP_WORDS for arg in argv)


def add_os_options(parser, argv):
    """Register `--cloud` and, when `argv` needs them, openstacksdk's `--os-*` options."""
    if "--cloud" not in parser._option_string_actions:
        # A default of SUPPRESS: an absent --cloud never hides --os-cloud's value.
        parser.add_argument("--cloud", dest="os_cloud", default=argparse.SUPPRESS, metavar="<name>",
                            help="the same as --os-cloud")
    if mentions_os_options(argv):
        from bayctl.cloud.connection import add_cloud_arguments

        add_cloud_arguments(parser, argv)
    dests = set(parser.get_default("_cloud_dests") or ()) | {"os_cloud"}
    parser.set_defaults(_cloud_dests=sorted(dests))
    return parser


def merged_os_options(*namespaces):
    """One Namespace of the cloud options set in `namespaces` (later ones win), for connect()."""
    merged = {}
    for namespace in namespaces:
        for dest in getattr(namespace, "_cloud_dests", ()) if namespace is not None else ():
            value = getattr(namespace, dest, None)
            if value is not None:
                merged[dest] = value
    return argparse.Namespace(_cloud_dests=sorted(merged), **merged)


class OpenStackCommand:
    """Mixin for a command that may reach a cloud: it takes the `--os-*` options, and the
    library calls it makes (create, delete, verify, ...) connect with them.

    A subclass with its own get_parser ends it with `return self.add_os_options(parser)`.
    """

    def get_parser(self, prog_name):
        return self.add_os_options(super().get_parser(prog_name))

    def add_os_options(self, parser):
        return add_os_options(parser, getattr(self.app, "argv", []))

    def os_options(self, parsed_args):
        return merged_os_options(getattr(self.app, "options", None), parsed_args)

    def run(self, parsed_args):
        from bayctl.cloud.connection import using_options

        with using_options(self.os_options(parsed_args)):
            return super().run(parsed_args)

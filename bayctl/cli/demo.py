"""`bayctl demo`: the README's first command (see bayctl.demo)."""

from cliff.command import Command


class Demo(Command):
    """Enforce example policies on this machine and print what real packets did.

    Builds containers as network namespaces (prefix "bdemo") on one bridge, starts a node
    agent, applies the shipped examples web-db then stars, and for each prints the
    connectivity between every pair of containers (ICMP, TCP, UDP) next to what the policy
    says. Exits 1 if any probe disagrees. Needs root. Cleans up unless --keep.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("policies", metavar="POLICY", nargs="*",
                            help="policies to demonstrate: files, or shipped examples' names (a file of that "
                                 "name wins; default: web-db stars)")
        parser.add_argument("--keep", action="store_true",
                            help="leave the namespaces and the agent running to look around")
        parser.add_argument("--clean", action="store_true",
                            help="only remove what an earlier `bayctl demo --keep` left")
        parser.add_argument("--prefix", default="bdemo", help="name prefix of namespaces, pins and socket")
        parser.add_argument("--timeout", type=float, default=2.0,
                            help="seconds to wait for a probe's reply before calling it dropped")
        return parser

    def take_action(self, parsed_args):
        from bayctl import demo

        if parsed_args.clean:
            demo.clean(parsed_args.prefix)
            self.app.stdout.write(f"removed the {parsed_args.prefix} demo\n")
            return 0
        return demo.run_demo(parsed_args.policies or None, prefix=parsed_args.prefix, keep=parsed_args.keep,
                             timeout=parsed_args.timeout, out=self.app.stdout)

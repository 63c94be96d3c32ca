"""`bayctl demo`: the README's first command (see bayctl.demo)."""

from cliff.command import Command


class Demo(Command):
    """Create a local bay, verify each example policy on it, delete it (exit 1 on a difference).

    The same as `bayctl create mesosbay bdemo --policy web-db && bayctl verify bdemo --grid &&
    bayctl policy apply stars --bay bdemo && bayctl verify bdemo --grid && bayctl delete bay bdemo`.
    Needs root. Deletes the bay unless --keep.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("policies", metavar="POLICY", nargs="*",
                            help="policies to demonstrate: files, or shipped examples' names (a file of that "
                                 "name wins; default: web-db stars)")
        parser.add_argument("--keep", action="store_true", help="leave the bay to look around")
        parser.add_argument("--bay", default="bdemo", help="name of the local bay the demo makes")
        parser.add_argument("--slaves", type=int, default=2, help="slaves of the demo's bay")
        return parser

    def take_action(self, parsed_args):
        from bayctl import demo
        from bayctl.cli.bay import _status

        return demo.run_demo(parsed_args.policies or None, bay=parsed_args.bay, keep=parsed_args.keep,
                             slaves=parsed_args.slaves, out=self.app.stdout, status=_status(self))

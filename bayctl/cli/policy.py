"""`bayctl policy check|compile FILE`: validate a group policy, show what the datapath gets."""

import sys

from cliff.command import Command
from cliff.lister import Lister

from bayctl.errors import PolicyError
from bayctl.policy import compile_entries, load_policy, parse_policy
from bayctl.policy.parser import MAX_POLICY_BYTES
from bayctl.share import POLICY_HELP, policy_path

STDIN = "-"


def read_policy(path):
    """The policy at `path`, or on standard input when `path` is '-'."""
    if path == STDIN:
        try:
            data = sys.stdin.buffer.read(MAX_POLICY_BYTES + 1)
        except OSError as err:
            raise PolicyError(f"cannot read: {err.strerror or err}", path="<stdin>") from None
        return parse_policy(data, source="<stdin>")
    return load_policy(policy_path(path))


def _add_file_argument(parser):
    parser.add_argument("file", metavar="FILE", help=POLICY_HELP + ", or - for standard input")
    return parser


class Check(Command):
    """Validate a group policy file; print a one-line summary (exit 1 on the first error)."""

    def get_parser(self, prog_name):
        return _add_file_argument(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        policy = read_policy(parsed_args.file)
        entries = compile_entries(policy)
        groups, rules = len(policy.named_groups), len(policy.rules)
        self.app.stdout.write(
            f"{policy.source}: ok: {groups} group{'s' * (groups != 1)}, {rules} rule{'s' * (rules != 1)},"
            f" intraGroup {policy.intra_group}, {len(entries)} map entries, digest {policy.digest}\n"
        )
        return 0


class Compile(Lister):
    """Show the allow entries a policy compiles to (one row per LPM map entry)."""

    def get_parser(self, prog_name):
        return _add_file_argument(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        policy = read_policy(parsed_args.file)
        columns = ("src_group", "src_tag", "dst_group", "dst_tag", "proto", "ports", "prefixlen",
                   "rule_id", "rule")
        rows = [
            (
                policy.group_name(entry.src_group),
                entry.src_group,
                policy.group_name(entry.dst_group),
                entry.dst_group,
                entry.proto_text(),
                entry.ports_text(),
                entry.prefixlen,
                entry.rule_id,
                entry.rule_text(),
            )
            for entry in compile_entries(policy)
        ]
        return columns, rows


class Examples(Lister):
    """List the example policies shipped with bayctl; pass a name wherever a policy file goes."""

    def take_action(self, parsed_args):
        from bayctl.share import example_description, example_policies

        rows = []
        for name, path in example_policies().items():
            policy = load_policy(path)
            rows.append((name, ", ".join(policy.named_groups), example_description(path)))
        return ("name", "groups", "description"), rows


# -- diff, history, rollback ------------------------------------------------------------------

DIFF_CHANGES, DIFF_TROUBLE = 1, 2   # exit statuses, as diff(1): 0 same, 1 different, 2 trouble


class Diff(Lister):
    """Show exactly which verdicts change between two policies: (from, to, protocol, ports).

    Computed from the compiled map entries, as the datapath decides (ranges included; adjacent
    ports with the same change are shown as one range). `--bay NAME NEW` compares with the
    policy the bay was last seeded with. Exit status: 0 nothing changes, 1 something does,
    2 bad input (one line naming file, line and field).
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("files", metavar="OLD NEW", nargs="+",
                            help="two policies (" + POLICY_HELP + "; - for standard input), or NEW "
                                 "alone with --bay")
        parser.add_argument("--bay", metavar="NAME", help="compare NEW with what this bay holds")
        parser.usage = f"{prog_name} [-h] [-f FORMAT] (OLD NEW | --bay NAME NEW)"
        return parser

    def run(self, parsed_args):
        from bayctl.errors import BayctlError

        self._changed = False
        try:
            super().run(parsed_args)
        except BayctlError as err:
            self.app.stderr.write(f"bayctl policy diff: {err}\n")
            return DIFF_TROUBLE
        return DIFF_CHANGES if self._changed else 0

    def take_action(self, parsed_args):
        from bayctl.policy import diff

        old, new = self._policies(parsed_args)
        changes = diff.diff_policies(old, new)
        self._changed = bool(changes)
        if not changes:
            self.app.stderr.write("no verdict changes\n")
        name = diff.group_namer(old, new)
        return ("from", "to", "protocol", "ports", "old", "new"), diff.as_rows(changes, name)

    def _policies(self, parsed_args):
        from bayctl.errors import BayctlError

        files = parsed_args.files
        if parsed_args.bay:
            if len(files) != 1:
                raise BayctlError("with --bay give one policy, NEW (the bay's own is OLD)")
            from bayctl.bay_policy import held_policy

            return held_policy(parsed_args.bay), read_policy(files[0])
        if len(files) != 2:
            raise BayctlError("give two policies, OLD and NEW (or --bay NAME NEW)")
        if files.count(STDIN) > 1:
            raise BayctlError("only one of OLD and NEW can be standard input")
        return read_policy(files[0]), read_policy(files[1])


class History(Lister):
    """List the policies a bay was last seeded with, newest first (digest, time, who, source).

    Every apply that reached every slave is recorded: create's seeding, `policy apply --bay`,
    `policy promote`, `policy rollback`. The newest is what the bay holds."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--bay", required=True, metavar="NAME", help="the bay")
        parser.add_argument("--long-digest", action="store_true", help="print whole digests")
        return parser

    def take_action(self, parsed_args):
        from bayctl.bay_policy import policy_history

        records = policy_history(parsed_args.bay)
        width = None if parsed_args.long_digest or parsed_args.formatter != "table" else 12
        rows = [(r.digest[:width], r.when(), r.action, r.who, r.source) for r in records]
        return ("digest", "applied", "action", "who", "source"), rows


class Rollback(Lister):
    """Re-seed a policy from the bay's history on every slave (default: the one before the current).

    The same seeding as `policy apply --bay`: each slave applies it unless it holds it, its
    digest is read back, a failed slave is named (exit 1) and the others are seeded anyway."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("digest", metavar="DIGEST", nargs="?",
                            help="the digest (or a unique prefix) from `policy history`")
        parser.add_argument("--bay", required=True, metavar="NAME", help="the bay")
        return parser

    def take_action(self, parsed_args):
        from bayctl.bay_policy import rollback_policy
        from bayctl.cli.bay import seed_rows

        return seed_rows(lambda status: rollback_policy(parsed_args.bay, parsed_args.digest, status=status),
                         self, f"Rolling back {parsed_args.bay}")

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

"""Bay verbs: create mesosbay, delete bay, list, show, policy apply, verify.

Argument parsing and output only; each command calls one function of bayctl.api.
"""

import logging
import sys

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from bayctl import api
from bayctl.cli.os_options import OpenStackCommand
from bayctl.create.context import Status
from bayctl.errors import SeedError
from bayctl.share import POLICY_HELP
from bayctl.spec import FIELDS


def _status(command, title=None):
    """Progress on standard error, unless the global -q/--quiet was given."""
    if command.app_args.verbose_level < 2:
        # Progress goes through Status; the libraries' INFO lines would say it twice (asyncssh:
        # one line per channel event).
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
        logging.getLogger("bayctl.seed").setLevel(logging.WARNING)
    status = Status() if command.app_args.verbose_level == 0 else Status.to_stderr()
    if title:
        status.start(title)
    return status


def _show(bay):
    data = bay.to_dict()
    data["slaves"] = ", ".join(data["slaves"])
    from bayctl.create.pipeline import STEPS

    order = [step.name for step in STEPS]
    steps = sorted(data["steps"].items(), key=lambda item: order.index(item[0]) if item[0] in order else 99)
    data["steps"] = "\n".join(f"{step}: {outcome}" for step, outcome in steps)
    return tuple(data), tuple("" if value is None else value for value in data.values())


class CreateMesosBay(OpenStackCommand, ShowOne):
    """Create a Mesos bay whose slaves enforce a group policy (or resume one half made).

    With no cloud configured (no --os-cloud, --os-auth-url, OS_CLOUD or OS_AUTH_URL) the bay is
    local: network
    namespaces on this machine, each node with its own sshd and agent. Every setting can come
    from a bay spec file (--spec bay.yaml, same keys as the flags) and the flags override it.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="bay name (lower-case letters, digits, -)")
        parser.add_argument("--spec", metavar="FILE", help="bay spec (bay.yaml); flags override its keys")
        for field in FIELDS:
            if field.key == "cloud":
                continue  # --os-cloud (or --cloud), with the other OpenStack options
            if field.kind == "labels":
                parser.add_argument(field.flag, dest=field.key, metavar="KEY=VALUE", action="append",
                                    help=field.help + " (repeatable)")
            elif field.kind == "choice":
                parser.add_argument(field.flag, dest=field.key, choices=field.choices, help=field.help)
            else:
                parser.add_argument(field.flag, dest=field.key, metavar=field.key.upper(), help=field.help)
        parser.add_argument("--retain", action="store_true",
                            help="keep a bay whose create failed, for debugging (default: remove it)")
        parser.add_argument("--verify", action="store_true",
                            help="after seeding, measure the connectivity matrix; a difference fails create")
        return parser

    def take_action(self, parsed_args):
        fields = {field.key: getattr(parsed_args, field.key, None) for field in FIELDS}
        fields["cloud"] = getattr(self.os_options(parsed_args), "os_cloud", None)  # kept with the bay
        bay = api.create_bay(parsed_args.name, spec_file=parsed_args.spec, retain=parsed_args.retain,
                             verify=parsed_args.verify, status=_status(self), **fields)
        return _show(bay)


class DeleteBay(OpenStackCommand, Command):
    """Delete a bay and everything bayctl made for it (stack or namespaces, keys, state)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="bay name")
        return parser

    def take_action(self, parsed_args):
        if not api.delete_bay(parsed_args.name, status=_status(self)):
            raise api.BayNotFound(f"no bay {parsed_args.name!r} (see `bayctl list`)")
        self.app.stdout.write(f"bay {parsed_args.name} deleted\n")
        return 0


class ListBays(OpenStackCommand, Lister):
    """List the bays bayctl knows here."""

    def take_action(self, parsed_args):
        columns = ("name", "provider", "status", "slaves", "master", "policy_digest")
        rows = []
        for bay in api.list_bays():
            rows.append((bay.name, bay.provider, bay.status, len(bay.slaves) or bay.spec.slaves,
                         bay.master.public_ip if bay.master else "", (bay.state.policy_digest or "")[:12]))
        return columns, rows


class ShowBay(OpenStackCommand, ShowOne):
    """Show one bay: provider, status, nodes, policy, the steps done."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="bay name")
        return parser

    def take_action(self, parsed_args):
        return _show(api.get_bay(parsed_args.name))


class PolicyApply(OpenStackCommand, Lister):
    """Seed a group policy on every slave of a bay, live (nodes already on it are left alone)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("file", metavar="FILE", help=POLICY_HELP)
        parser.add_argument("--bay", required=True, metavar="NAME", help="the bay to seed")
        return parser

    def take_action(self, parsed_args):
        columns = ("node", "status", "digest", "reason")
        try:
            results = api.apply_policy(parsed_args.bay, parsed_args.file,
                                       status=_status(self, f"Seeding {parsed_args.file}"))
        except SeedError as err:
            for result in err.results:  # name every node, then the one-line error and exit 1
                print(f"{result.node}: {result.status} {result.reason}", file=sys.stderr)
            raise
        return columns, [(r.node, r.status, (r.digest or "")[:12], r.reason) for r in results]


class Verify(OpenStackCommand, Lister):
    """Measure a bay's connectivity matrix and compare it with its policy (exit 1 on differences).

    A probe endpoint is placed in every group (spread over the slaves) and the master plays
    `external`; every group tries every other on the policy's ports, one port the policy does
    not name, and ICMP. `-f json` prints {"pairs": [...], "mismatches": [...]}.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="bay name")
        parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
        return parser

    def take_action(self, parsed_args):
        status = _status(self, f"Verifying bay {parsed_args.name}")
        self.report = api.verify_bay(parsed_args.name, status=status)
        if parsed_args.html:
            from bayctl.verify.html import render

            with open(parsed_args.html, "w", encoding="utf-8") as handle:
                handle.write(render(self.report))
        columns = ("from", "to", "service", "expected", "observed", "verdict")
        return columns, list(self.report.rows())

    def produce_output(self, parsed_args, column_names, data):
        if parsed_args.formatter == "json":
            # The report's own shape (pairs + mismatches), not a list of table rows.
            self.app.stdout.write(self.report.dumps() + "\n")
            return 0
        result = super().produce_output(parsed_args, column_names, data)
        mismatches = len(self.report.mismatches)
        summary = (f"{len(self.report.pairs)} probes, all as the policy says" if not mismatches
                   else f"{mismatches} of {len(self.report.pairs)} probes differ from the policy")
        print(f"bay {self.report.bay}: {summary} ({self.report.seconds:g}s)", file=sys.stderr)
        return result

    def run(self, parsed_args):
        result = super().run(parsed_args)
        return 1 if self.report.mismatches else result

"""Bay verbs: create mesosbay, delete bay, list, show, policy apply, verify.

Argument parsing and output only; each command calls one function of bayctl.api.
"""

import logging
import os
import sys

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from bayctl import api
from bayctl.cli.os_options import OpenStackCommand
from bayctl.create.context import Status
from bayctl.create.state import DAMAGED
from bayctl.errors import BayctlError, SeedError
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


STRUCTURED = ("json", "yaml")  # formats that keep lists and mappings as such


def _show(bay, parsed_args, health=True):
    """show's fields: lists stay lists in json/yaml; the table gets one line per item."""
    data = bay.to_dict()
    from bayctl.create.pipeline import STEPS

    order = [step.name for step in STEPS]
    steps = sorted(data["steps"].items(), key=lambda item: order.index(item[0]) if item[0] in order else 99)
    data["steps"] = [{"step": step, "outcome": outcome} for step, outcome in steps]
    if health:
        from bayctl.verify.health import as_dict, summary

        checked = bay.health()
        data["health"] = (as_dict(checked) if parsed_args.formatter in STRUCTURED
                          else summary(checked) if checked else "no nodes yet")
    if parsed_args.formatter not in STRUCTURED:
        data["slaves"] = "\n".join(data["slaves"])
        data["steps"] = "\n".join(f"{step['step']}: {step['outcome']}" for step in data["steps"])
    return tuple(data), tuple("" if value is None else value for value in data.values())


def _flag_help(field) -> str:
    """A spec field's help with its range and default (the flag itself defaults to None, so
    that bay.yaml's value shows through: argparse's %(default)s would print None)."""
    extra = []
    if field.lo is not None and field.hi is not None:
        extra.append(f"{field.lo}-{field.hi}")
    if field.default is not None:
        extra.append(f"default: {field.default}")
    text = field.help + (f" ({'; '.join(extra)})" if extra else "")
    return text.replace("%", "%%")  # argparse formats help with %


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
                                    help=_flag_help(field) + " (repeatable)")
            elif field.kind == "choice":
                parser.add_argument(field.flag, dest=field.key, choices=field.choices, help=_flag_help(field))
            else:
                parser.add_argument(field.flag, dest=field.key, metavar=field.key.upper(),
                                    help=_flag_help(field))
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
        return _show(bay, parsed_args, health=False)  # seeding just read every slave back


class DeleteBay(OpenStackCommand, Command):
    """Delete bays and everything bayctl made for them (stack or namespaces, keys, state).

    A bay whose record (bay.json) is damaged is removed too: what it left on this machine
    is found by name."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("names", metavar="NAME", nargs="*", help="bay name (several: each in turn)")
        parser.add_argument("--all", action="store_true", help="every bay bayctl knows here")
        return parser

    def take_action(self, parsed_args):
        names = list(dict.fromkeys(parsed_args.names))
        if parsed_args.all:
            names += [bay.name for bay in api.list_bays() if bay.name not in names]
        elif not names:
            raise BayctlError("name a bay to delete (or --all)")
        missing = []
        for name in names:  # one that fails stops the rest: its error is the command's
            if api.delete_bay(name, status=_status(self)):
                self.app.stdout.write(f"bay {name} deleted\n")
            else:
                missing.append(name)
        if missing:
            raise api.BayNotFound(f"no bay {', '.join(map(repr, missing))} (see `bayctl list`)")
        return 0


class ListBays(OpenStackCommand, Lister):
    """List the bays bayctl knows here, with each bay's health (one SSH round per bay: every
    slave's agent up, and enforcing the policy the bay was seeded with). A bay whose record
    is damaged is listed as DAMAGED with the reason."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--no-health", action="store_true", help="do not ask the nodes (no SSH)")
        return parser

    def take_action(self, parsed_args):
        columns = ("name", "provider", "status", "slaves", "master", "policy_digest", "health")
        rows = []
        for bay in api.list_bays():
            if bay.status == DAMAGED:
                rows.append((bay.name, "", DAMAGED, "", "", "", bay.state.reason))
                continue
            rows.append((bay.name, bay.provider, bay.status, len(bay.slaves) or bay.spec.slaves,
                         bay.master.public_ip if bay.master else "", (bay.state.policy_digest or "")[:12],
                         "" if parsed_args.no_health else _health_cell(bay)))
        return columns, rows


def _health_cell(bay) -> str:
    from bayctl.verify.health import summary

    if not bay.nodes:
        return ""
    checked = bay.health()
    return "ok" if all(entry.ok for entry in checked) else summary(checked)


class ShowBay(OpenStackCommand, ShowOne):
    """Show one bay: provider, status, nodes, policy, the steps done, and each slave's health
    (agent up, enforcing the policy the bay was seeded with: one SSH round to the slaves).
    In json/yaml `slaves`, `steps` and `health` are lists and mappings."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="bay name")
        return parser

    def take_action(self, parsed_args):
        return _show(api.get_bay(parsed_args.name), parsed_args)


class PolicyApply(OpenStackCommand, Lister):
    """Seed a group policy on every slave of a bay, live (nodes already on it are left alone).

    With --audit the policy is staged on every slave instead: the active policy keeps
    enforcing, and what the staged one would change is counted (`bayctl policy staged --bay`)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("file", metavar="FILE", help=POLICY_HELP)
        parser.add_argument("--bay", required=True, metavar="NAME", help="the bay to seed")
        parser.add_argument("--distribution", choices=("ssh", "zookeeper"), default=None,
                            help="how the policy reaches the slaves this time: written once to the bay's "
                                 "ZooKeeper and watched by every agent, or pushed to each over SSH "
                                 "(default: the bay's, zookeeper where it has one)")
        parser.add_argument("--audit", action="store_true",
                            help="stage it beside the active policy instead (audit mode: counted, not "
                                 "enforced; see `policy staged|promote|discard --bay`)")
        return parser

    def take_action(self, parsed_args):
        if parsed_args.audit:
            from bayctl.bay_policy import stage_policy

            return seed_rows(lambda status: stage_policy(parsed_args.bay, parsed_args.file, status=status),
                             self, f"Staging {parsed_args.file}")
        return seed_rows(lambda status: api.apply_policy(parsed_args.bay, parsed_args.file, status=status,
                                                         distribution=parsed_args.distribution),
                         self, f"Seeding {parsed_args.file}")


def seed_rows(seed, command, title):
    """Run `seed(status)` (a per-node seeding) and give its results as rows; on failure name
    every node on standard error, then the one-line error (exit 1)."""
    try:
        results = seed(_status(command, title))
    except SeedError as err:
        for result in err.results:
            print(f"{result.node}: {result.status} {result.reason}", file=sys.stderr)
        raise
    return ("node", "status", "digest", "reason"), [(r.node, r.status, (r.digest or "")[:12], r.reason)
                                                     for r in results]


class Ssh(Command):
    """Log in to a node of a bay (default: the master), or run CMD there.

    OpenSSH with the bay's key and known_hosts only; slaves are reached through the master,
    as seeding reaches them. `bayctl ssh NAME slave0 -- ip addr` runs one command."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="bay name")
        parser.add_argument("node", metavar="NODE", nargs="?", help="master (default), slave0, ...")
        parser.usage = f"{prog_name} [-h] NAME [NODE] [-- CMD ...]"
        # Everything after `--` is the command, split off before argparse sees it: argparse
        # drops the `--` and would give a NODE-less command's first word to NODE.
        parse = parser.parse_args

        def parse_args(args=None, namespace=None):
            args = list(sys.argv[1:] if args is None else args)
            cut = args.index("--") if "--" in args else len(args)
            parsed = parse(args[:cut], namespace)
            parsed.command = args[cut + 1:]
            return parsed

        parser.parse_args = parse_args
        return parser

    def take_action(self, parsed_args):
        argv = api.ssh_argv(parsed_args.name, parsed_args.node, parsed_args.command)
        sys.stdout.flush()
        os.execvp(argv[0], argv)  # ssh's exit status is the command's


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
        parser.add_argument("--grid", action="store_true",
                            help="print the compact view: one row per pair of groups, one column per service")
        parser.add_argument("--flows", metavar="DURATION",
                            help="with --html: also draw the flows the agents observed in the last "
                                 "DURATION (5m, 1h): counts per group pair, denied in red")
        return parser

    def take_action(self, parsed_args):
        if parsed_args.html:
            from bayctl.verify.html import check_writable

            check_writable(parsed_args.html)
        api.get_bay(parsed_args.name)  # an unknown bay: its error alone, no progress line first
        status = _status(self, f"Verifying bay {parsed_args.name}")
        flows_since = None
        if parsed_args.flows:
            import time

            from bayctl.observe.text import parse_since

            if not parsed_args.html:
                raise BayctlError("--flows draws on the HTML page: give --html FILE too")
            flows_since = parse_since(parsed_args.flows, time.time())
        self.report = api.verify_bay(parsed_args.name, status=status)
        if parsed_args.html:
            from bayctl.verify.html import render

            flows = None
            if flows_since is not None:  # observe room: bayctl/observe/
                from bayctl.observe.bay import observed_flows

                flows = observed_flows(api.get_bay(parsed_args.name), flows_since,
                                       on_note=lambda note: print(note, file=sys.stderr))
            with open(parsed_args.html, "w", encoding="utf-8") as handle:
                handle.write(render(self.report, flows=flows, flows_window=parsed_args.flows or ""))
        columns = ("from", "to", "service", "expected", "observed", "verdict")
        return columns, list(self.report.rows())

    def produce_output(self, parsed_args, column_names, data):
        if parsed_args.formatter == "json":
            # The report's own shape (pairs + mismatches), not a list of table rows.
            self.app.stdout.write(self.report.dumps() + "\n")
            return 0
        if parsed_args.grid:
            self.app.stdout.write(self.report.grid())
            result = 0
        else:
            result = super().produce_output(parsed_args, column_names, data)
        mismatches = self.report.mismatches
        blocked = sum(1 for probe in mismatches if probe.expected)  # measured blocked, policy allows
        summary = (f"{len(self.report.pairs)} probes, all as the policy says" if not mismatches
                   else f"{len(mismatches)} of {len(self.report.pairs)} probes differ from the policy: "
                        f"{blocked} blocked where the policy allows, {len(mismatches) - blocked} allowed "
                        "where the policy denies")
        print(f"bay {self.report.bay}: {summary} ({self.report.seconds:g}s)", file=sys.stderr)
        return result

    def run(self, parsed_args):
        result = super().run(parsed_args)
        return 1 if self.report.mismatches else result

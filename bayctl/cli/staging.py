"""Audit mode on the CLI: `bayctl node staged|promote|discard` (one node's agent) and
`bayctl policy staged|promote|discard --bay NAME` (every slave of a bay).

Staging itself is `bayctl node apply --audit FILE` / `bayctl policy apply FILE --bay NAME --audit`.
"""

import time

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from bayctl.cli.node import _add_socket, _client

STAGED_COLUMNS = ("from", "to", "would drop packets", "would drop flows", "would allow packets",
                  "would allow flows")
STAGED_FIELDS = ("from", "to", "would_drop_packets", "would_drop_flows", "would_allow_packets",
                 "would_allow_flows")


def _staged_rows(pairs):
    return STAGED_COLUMNS, [tuple(pair[field] for field in STAGED_FIELDS) for pair in pairs]


def _since(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if epoch else "-"


class NodeStaged(Lister):
    """Show what the node's staged policy would change, per group pair (audit mode).

    Counts packets (and the flows they open) since the policy was staged: would drop = the
    active policy lets them through and the staged one would not; would allow = the reverse.
    The staged and active digests are printed on standard error."""

    def get_parser(self, prog_name):
        return _add_socket(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        staged = _client(parsed_args).staged()
        if staged["digest"] is None:
            self.app.stderr.write("nothing staged on this node\n")
        else:
            self.app.stderr.write(f"staged {staged['digest'][:12]} since {_since(staged['since'])} "
                                  f"(active {(staged['active'] or 'none')[:12]})\n")
        return _staged_rows(staged["pairs"])


class NodePromote(ShowOne):
    """Make the node's staged policy the active one (the same atomic swap as `node apply`)."""

    def get_parser(self, prog_name):
        parser = _add_socket(super().get_parser(prog_name))
        parser.add_argument("--digest", help="promote only if this is the staged policy's digest")
        return parser

    def take_action(self, parsed_args):
        result = _client(parsed_args).promote_staged(parsed_args.digest)
        return ("digest", "entries"), (result["digest"], result["entries"])


class NodeDiscard(Command):
    """Drop the node's staged policy (the active one is untouched)."""

    def get_parser(self, prog_name):
        return _add_socket(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        result = _client(parsed_args).discard_staged()
        discarded = result.get("discarded")
        self.app.stdout.write(f"discarded {discarded}\n" if discarded else "nothing was staged\n")


# -- a bay's slaves --------------------------------------------------------------------------


def _add_bay(parser):
    parser.add_argument("--bay", required=True, metavar="NAME", help="the bay")
    return parser


class BayStaged(Lister):
    """Show what the bay's staged policy would change, summed over its slaves, per group pair.

    would drop: packets the active policy lets through and the staged one would not (and the
    flows they open); would allow: the reverse. Which policy is staged, since when and by whom
    goes to standard error, with any slave that does not stage it (then exit 1)."""

    def get_parser(self, prog_name):
        return _add_bay(super().get_parser(prog_name))

    def run(self, parsed_args):
        status = super().run(parsed_args)
        return status or (1 if self._disagree else 0)

    def take_action(self, parsed_args):
        from bayctl.bay_policy import staged_counts

        staged = staged_counts(parsed_args.bay)
        self._disagree = [node for node in staged["nodes"] if node["reason"]]
        if staged["digest"]:
            agreeing = f"{len(staged['nodes']) - len(self._disagree)}/{len(staged['nodes'])}"
            self.app.stderr.write(f"staged {staged['digest'][:12]} ({staged['source']}) by {staged['who']} "
                                  f"since {_since(staged['time'])} on {agreeing} slaves\n")
        else:
            self.app.stderr.write(f"nothing staged on bay {parsed_args.bay}\n")
        for node in self._disagree:
            self.app.stderr.write(f"{node['node']}: {node['reason']}\n")
        return _staged_rows(staged["pairs"])


class BayPromote(Lister):
    """Make the bay's staged policy active on every slave: the same atomic swap as `policy
    apply --bay`, with its guarantees (digest read back, a failed slave named, exit 1)."""

    def get_parser(self, prog_name):
        return _add_bay(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        from bayctl.bay_policy import promote_staged
        from bayctl.cli.bay import seed_rows

        return seed_rows(lambda status: promote_staged(parsed_args.bay, status=status), self,
                         f"Promoting the staged policy of {parsed_args.bay}")


class BayDiscard(Lister):
    """Drop the bay's staged policy on every slave (the active policy is untouched)."""

    def get_parser(self, prog_name):
        return _add_bay(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        from bayctl.bay_policy import discard_staged
        from bayctl.cli.bay import seed_rows

        return seed_rows(lambda status: discard_staged(parsed_args.bay, status=status), self,
                         f"Discarding the staged policy of {parsed_args.bay}")

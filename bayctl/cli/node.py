"""`bayctl node ...` and `bayctl policy stats|drops`: the node agent and its API.

Output formatting only; every command is one AgentClient call (bayctl.node.client).
"""

import sys

from cliff.command import Command
from cliff.lister import Lister
from cliff.show import ShowOne

from bayctl.errors import NodeError
from bayctl.node.protocol import DEFAULT_SOCKET, ENV_SOCKET
from bayctl.share import POLICY_HELP


def _add_socket(parser):
    parser.add_argument(
        "--socket",
        default=None,
        help=f"the agent's unix socket (default: ${ENV_SOCKET} or {DEFAULT_SOCKET})",
    )
    return parser


def _client(parsed_args):
    from bayctl.node.client import AgentClient

    return AgentClient(parsed_args.socket)


class Agent(Command):
    """Run the node agent in the foreground (owns the datapath; API on a root-only unix socket).

    Several agents can share a machine: give each its own --socket, --pin-dir and --state-dir
    (or BAYCTL_AGENT_SOCKET / BAYCTL_AGENT_PIN_DIR / BAYCTL_AGENT_STATE_DIR). Stops on SIGTERM,
    leaving the pinned maps and attached programs enforcing.
    """

    def get_parser(self, prog_name):
        from bayctl.node import agent

        return agent.build_parser(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        from bayctl.node import agent

        agent.configure_logging(verbose=self.app.options.verbose_level > 1)
        return agent.run_agent(parsed_args.socket, parsed_args.pin_dir, parsed_args.state_dir,
                               conntrack_timeouts=parsed_args.conntrack_timeouts,
                               flow_options=agent._flow_options(parsed_args))


class Apply(ShowOne):
    """Apply a group policy to this node's agent (FILE, or - for stdin); prints its digest.

    The policy replaces the current one atomically; an invalid policy changes nothing.
    With --audit it is staged instead: the active policy keeps enforcing, the staged one is
    evaluated on the same packets and what it would change is counted (`bayctl node staged`,
    then `bayctl node promote` or `bayctl node discard`).
    """

    def get_parser(self, prog_name):
        parser = _add_socket(super().get_parser(prog_name))
        parser.add_argument("file", metavar="FILE", help=POLICY_HELP + ", or - to read stdin")
        parser.add_argument("--audit", action="store_true",
                            help="stage the policy beside the active one (audit mode) instead of applying it")
        return parser

    def take_action(self, parsed_args):
        if parsed_args.file == "-":
            text, source = sys.stdin.read(), "<stdin>"
        else:
            from bayctl.share import policy_path

            parsed_args.file = policy_path(parsed_args.file)
            try:
                with open(parsed_args.file, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                raise NodeError(f"{parsed_args.file}: {exc.strerror}") from None
            except UnicodeDecodeError:
                raise NodeError(f"{parsed_args.file}: not UTF-8 text") from None
            source = parsed_args.file
        if parsed_args.audit:
            result = _client(parsed_args).stage_policy(text, source=source)
            return ("staged", "entries", "active"), (result["digest"], result["entries"], result["active"])
        result = _client(parsed_args).apply_policy(text, source=source)
        return ("digest", "entries"), (result["digest"], result["entries"])


class Show(ShowOne):
    """Show the policy this node enforces: its digest and groups (none = deny all)."""

    def get_parser(self, prog_name):
        parser = _add_socket(super().get_parser(prog_name))
        parser.add_argument("--source", action="store_true", help="also print the policy's YAML text")
        return parser

    def take_action(self, parsed_args):
        policy = _client(parsed_args).show_policy()
        groups = policy.get("groups") or {}
        if parsed_args.formatter == "table":
            groups = ", ".join(f"{name}={tag}" for name, tag in sorted(groups.items(), key=lambda kv: kv[1]))
        columns, values = ["digest", "groups"], [policy.get("digest"), groups]
        if parsed_args.source:
            columns.append("source")
            values.append(policy.get("source"))
        return columns, values


class Clear(Command):
    """Remove the node's policy: every packet through the datapath is dropped (fail closed)."""

    def get_parser(self, prog_name):
        return _add_socket(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        _client(parsed_args).clear_policy()
        self.app.stdout.write("policy cleared: this node now denies all traffic\n")


ENDPOINT_COLUMNS = ("ip", "group", "tag", "ifname", "netns")


class Endpoints(Lister):
    """List the endpoints (IP -> group) registered with this node's agent."""

    def get_parser(self, prog_name):
        return _add_socket(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        endpoints = _client(parsed_args).endpoints()
        return ENDPOINT_COLUMNS, [tuple(ep.get(column) for column in ENDPOINT_COLUMNS) for ep in endpoints]


class EndpointAdd(ShowOne):
    """Register IP as a member of GROUP (a policy group name or a numeric tag).

    With --ifname the datapath is attached to that interface (inside --netns, a path like
    /run/netns/x or /proc/PID/ns/net) so its traffic is enforced.
    """

    def get_parser(self, prog_name):
        parser = _add_socket(super().get_parser(prog_name))
        parser.add_argument("ip", metavar="IP", help="the endpoint's IPv4 address")
        parser.add_argument("group", metavar="GROUP", help="group name from the policy, or its tag")
        parser.add_argument("--ifname", help="interface carrying IP's traffic: attach the datapath to it")
        parser.add_argument("--netns", help="network namespace of --ifname (path); default: the agent's")
        parser.add_argument("--allow-uplink", action="store_true",
                            help="attach even though --ifname carries the default route of the agent's "
                                 "own namespace (its default deny then applies to the node's own traffic)")
        return parser

    def take_action(self, parsed_args):
        endpoint = _client(parsed_args).add_endpoint(
            parsed_args.ip, parsed_args.group, ifname=parsed_args.ifname, netns=parsed_args.netns,
            allow_uplink=parsed_args.allow_uplink,
        )
        return ENDPOINT_COLUMNS, tuple(endpoint.get(column) for column in ENDPOINT_COLUMNS)


class EndpointRemove(Command):
    """Unregister IP (and detach the datapath from its interface if no other endpoint uses it)."""

    def get_parser(self, prog_name):
        parser = _add_socket(super().get_parser(prog_name))
        parser.add_argument("ip", metavar="IP", help="the endpoint's IPv4 address")
        return parser

    def take_action(self, parsed_args):
        result = _client(parsed_args).remove_endpoint(parsed_args.ip)
        state = "removed" if result.get("removed") else "was not registered"
        self.app.stdout.write(f"{result['ip']}: {state}\n")


STATS_COLUMNS = ("from", "to", "allowed packets", "allowed bytes", "dropped packets", "dropped bytes")
STATS_FIELDS = ("from", "to", "allowed_packets", "allowed_bytes", "dropped_packets", "dropped_bytes")


class PolicyStats(Lister):
    """Packets and bytes allowed and dropped per group pair on this node (from -> to)."""

    def get_parser(self, prog_name):
        return _add_socket(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        pairs = _client(parsed_args).stats()["pairs"]
        return STATS_COLUMNS, [tuple(pair[field] for field in STATS_FIELDS) for pair in pairs]


class PolicyDrops(Lister):
    """Packets dropped on this node by reason (policy, no policy loaded, unsupported, malformed)."""

    def get_parser(self, prog_name):
        return _add_socket(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        drops = _client(parsed_args).stats()["drops"]
        return ("reason", "packets"), sorted(drops.items())

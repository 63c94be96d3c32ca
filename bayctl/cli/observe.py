"""`bayctl observe --bay B` and `bayctl node observe`: flow events, like `hubble observe`.

Text output is one line per flow (bayctl/observe/text.py); `-f json` is one JSON object per
line. Following is the default; `--no-follow` prints the history the agents keep and ends.
Ctrl-C ends a follow cleanly (exit status 0).
"""

import asyncio
import json
import sys
import time

from cliff.command import Command

from bayctl.errors import BayctlError, NodeError
from bayctl.observe import text


def _add_filters(parser):
    parser.add_argument("--verdict", choices=text.VERDICTS, help="only flows with this verdict")
    parser.add_argument("--from", dest="src", metavar="GROUP", help="only flows from this group")
    parser.add_argument("--to", dest="dst", metavar="GROUP", help="only flows to this group")
    parser.add_argument("--since", metavar="DURATION",
                        help="also the agents' history from that long ago (30s, 5m, 2h)")
    parser.add_argument("--no-follow", action="store_true", help="print the history and end")
    parser.add_argument("-f", "--format", dest="output", choices=("text", "json"), default="text",
                        help="text lines (default) or JSON lines")
    return parser


class _Printer:
    def __init__(self, out, output):
        self.out, self.json = out, output == "json"
        self.count = 0

    def flow(self, flow):
        self.count += 1
        self.out.write((json.dumps(flow, sort_keys=True) if self.json else text.line(flow)) + "\n")
        self.out.flush()

    @staticmethod
    def note(message):
        print(message, file=sys.stderr, flush=True)


class Observe(Command):
    """Show the flows a bay's agents see, merged from every slave (one SSH connection each)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--bay", required=True, metavar="NAME", help="bay name")
        return _add_filters(parser)

    def take_action(self, parsed_args):
        from bayctl import api
        from bayctl.observe.bay import BayObserver

        since = text.parse_since(parsed_args.since, time.time()) if parsed_args.since else None
        bay = api.get_bay(parsed_args.bay)
        if not bay.nodes:
            raise BayctlError(f"bay {parsed_args.bay} has no nodes yet ({bay.status})")
        printer = _Printer(self.app.stdout, parsed_args.output)
        observer = BayObserver(bay.nodes, bay_state_dir=bay.state.directory, ssh_user=bay.ssh_user,
                               ssh_key=bay.ssh_key, on_flow=printer.flow, on_note=printer.note,
                               verdict=parsed_args.verdict, src=parsed_args.src, dst=parsed_args.dst,
                               since=since)
        if parsed_args.no_follow:
            asyncio.run(observer.history())
            return 0
        return _until_interrupted(lambda stop: observer.follow(stop))


class NodeObserve(Command):
    """Show the flows this node's agent sees (GET /v1/flows)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--socket", default=None,
                            help="the agent's unix socket (default: $BAYCTL_AGENT_SOCKET or "
                                 "/run/bayctl/agent.sock)")
        return _add_filters(parser)

    def take_action(self, parsed_args):
        from bayctl.node.client import AgentClient

        client = AgentClient(parsed_args.socket)
        since = text.parse_since(parsed_args.since, time.time()) if parsed_args.since else None
        wanted = {"verdict": parsed_args.verdict, "from": parsed_args.src, "to": parsed_args.dst,
                  "since": since}
        printer = _Printer(self.app.stdout, parsed_args.output)
        if parsed_args.no_follow:
            for flow in client.flows(**wanted):
                printer.flow(flow)
            return 0
        stream = client.follow_flows(history=since is not None, **wanted)
        try:
            for flow in stream:
                printer.flow(flow)
        except KeyboardInterrupt:
            return 0
        finally:
            stream.close()
        raise NodeError(f"the agent at {client.socket_path} ended the stream")


def _until_interrupted(run):
    """Run the coroutine run(stop) until Ctrl-C, then let it close its connections."""
    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run(stop)

    asyncio.run(main())
    return 0

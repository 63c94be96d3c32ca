"""The node side of `bayctl observe --bay`: follow this node's agent, print its flows as JSON lines.

Run over SSH by bayctl/observe/bay.py as `python -m bayctl.observe.node [filters]`. It ends when
its stdin closes (the bay side hung up: no orphan is left waiting for a flow to fail its write),
or when the agent's stream ends; an error is one JSON line {"error": ...} and exit status 1.
"""

import argparse
import json
import os
import sys
import threading

from bayctl.errors import BayctlError
from bayctl.node.client import AgentClient


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m bayctl.observe.node")
    parser.add_argument("--verdict")
    parser.add_argument("--from", dest="src")
    parser.add_argument("--to", dest="dst")
    parser.add_argument("--since", type=float, help="epoch seconds: the agent's history from then first")
    parser.add_argument("--no-follow", action="store_true", help="print the history and end")
    parser.add_argument("--socket", default=None)
    return parser


def _exit_when_stdin_closes():
    def watch():
        while sys.stdin.buffer.read1(4096) if hasattr(sys.stdin.buffer, "read1") else sys.stdin.read(1):
            pass
        os._exit(0)  # the reader thread blocks in the socket: leave without waiting for it

    threading.Thread(target=watch, daemon=True).start()


def main(argv=None):
    args = build_parser().parse_args(argv)
    client = AgentClient(args.socket)
    wanted = {"verdict": args.verdict, "from": args.src, "to": args.dst, "since": args.since}
    try:
        if args.no_follow:
            flows = client.flows(**wanted)
        else:
            _exit_when_stdin_closes()
            flows = client.follow_flows(history=args.since is not None, **wanted)
        for flow in flows:
            sys.stdout.write(json.dumps(flow, sort_keys=True) + "\n")
            sys.stdout.flush()
    except BayctlError as exc:
        sys.stdout.write(json.dumps({"error": str(exc)}) + "\n")
        return 1
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The agent's flow log: reads the datapath's flow events and serves them (GET /v1/flows).

The classifier writes one record per verdict on a new flow into the bayctl_events ring buffer
(policy/lib/events.h). One reader thread here turns each record into a flow document, keeps the
last `history` of them for plain reads, and hands each to every follower. A follower that
cannot keep up loses events (counted, reported in status()), never slows the reader: the
kernel's ring buffer would then fill and the datapath would count them as lost instead.

A flow document:
    {"time": "2026-12-04T16:40:01.123456Z", "node": "slave-1", "interface": "eth0",
     "src_ip", "dst_ip", "src_port", "dst_port", "proto": "tcp"|"udp"|"icmp"|"<number>",
     "from": group name, "to": group name, "from_tag", "to_tag",
     "verdict": "allowed"|"denied"|"would-allow"|"would-drop",
     "reason": "policy"|"no-policy"|... (only when not allowed), "rule_id"}
"""

import collections
import ctypes
import datetime
import ipaddress
import logging
import queue
import threading
import time

from bayctl.node import libbpf
from bayctl.policy import layout

LOG = logging.getLogger("bayctl.node.flows")

DEFAULT_HISTORY = 10000
FOLLOWER_BACKLOG = 10000     # events a slow follower may lag behind before it loses some
POLL_MS = 250                # how often the reader looks up when nothing arrives (stop checks)
EVENT_SIZE = ctypes.sizeof(layout.FlowEvent)

VERDICT_NAMES = {kind: kind.name.lower().replace("_", "-") for kind in layout.VerdictKind}
REASON_NAMES = {reason: reason.name.lower().replace("_", "-") for reason in layout.DropReason}
VERDICTS = frozenset(VERDICT_NAMES.values())


class FlowFilter:
    """Which flows a reader wants: verdict, source/destination group names, not before `since`."""

    def __init__(self, verdict=None, src=None, dst=None, since=None):
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(sorted(VERDICTS))}, not {verdict!r}")
        self.verdict, self.src, self.dst, self.since = verdict, src, dst, since

    def __call__(self, flow):
        return ((self.verdict is None or flow["verdict"] == self.verdict)
                and (self.src is None or self.src in (flow["from"], str(flow["from_tag"])))
                and (self.dst is None or self.dst in (flow["to"], str(flow["to_tag"])))
                and (self.since is None or flow["epoch"] >= self.since))


class FlowLog:
    """Reads the ring buffer of `datapath` in a thread; `describe` names groups and interfaces.

    describe_group(tag) -> name or None; describe_interface(ifindex, netns_cookie) -> name or None.
    """

    def __init__(self, datapath, node, describe_group, describe_interface, history=DEFAULT_HISTORY):
        self.datapath = datapath
        self.node = node
        self.describe_group = describe_group
        self.describe_interface = describe_interface
        self._history = collections.deque(maxlen=history)
        self._followers = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._received = 0
        self._lost_by_followers = 0
        self._malformed = 0
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC: wall time = monotonic + this offset.
        self._wall_offset_ns = time.time_ns() - time.monotonic_ns()

    # -- reading ----------------------------------------------------------------------------------

    def start(self):
        ring = libbpf.RingBuffer(self.datapath.events_fd(), self._on_record, what="flow event ring buffer")
        self._thread = threading.Thread(target=self._run, args=(ring,), name="flow-events", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self, ring):
        with ring:
            while not self._stop.is_set():
                try:
                    ring.poll(POLL_MS)
                except Exception:  # noqa: BLE001 - the reader must outlive one bad poll
                    LOG.exception("reading flow events failed; retrying")
                    self._stop.wait(1)

    def _on_record(self, data):
        if len(data) < EVENT_SIZE:
            self._malformed += 1
            return
        flow = self.describe(layout.FlowEvent.from_buffer_copy(data[:EVENT_SIZE]))
        with self._lock:
            self._received += 1
            self._history.append(flow)
            followers = list(self._followers)
        for follower in followers:
            try:
                follower.put_nowait(flow)
            except queue.Full:
                with self._lock:
                    self._lost_by_followers += 1

    def describe(self, event):
        epoch_ns = event.time_ns + self._wall_offset_ns
        proto = layout.PROTO_NAMES.get(event.proto, str(event.proto))
        ports = event.proto in (layout.PROTO_TCP, layout.PROTO_UDP)
        verdict = layout.VerdictKind(event.verdict) if event.verdict < layout.VERDICT_KINDS else None
        flow = {
            "time": _iso(epoch_ns),
            "epoch": epoch_ns / 1e9,
            "node": self.node,
            "interface": self.describe_interface(event.ifindex, event.netns_cookie) or f"if{event.ifindex}",
            "src_ip": str(ipaddress.IPv4Address(bytes(event.saddr))),
            "dst_ip": str(ipaddress.IPv4Address(bytes(event.daddr))),
            "src_port": int.from_bytes(bytes(event.sport), "big") if ports else None,
            "dst_port": int.from_bytes(bytes(event.dport), "big") if ports else None,
            "proto": proto,
            "from": self.describe_group(event.src_group) or str(event.src_group),
            "to": self.describe_group(event.dst_group) or str(event.dst_group),
            "from_tag": event.src_group,
            "to_tag": event.dst_group,
            "verdict": VERDICT_NAMES.get(verdict, str(event.verdict)),
            "rule_id": event.rule_id,
        }
        if verdict not in (layout.VerdictKind.ALLOWED, layout.VerdictKind.WOULD_ALLOW):
            try:
                flow["reason"] = REASON_NAMES[layout.DropReason(event.reason)]
            except ValueError:
                flow["reason"] = str(event.reason)
        return flow

    # -- serving ----------------------------------------------------------------------------------

    def recent(self, wanted, limit=None):
        """The flows in the history that `wanted` accepts, oldest first (the last `limit`)."""
        with self._lock:
            flows = [flow for flow in self._history if wanted(flow)]
        return flows[-limit:] if limit else flows

    def follow(self, wanted, stopped, with_history=False, idle=1.0):
        """Yield flows as they arrive (None every `idle` s without one, so that the caller can
        check its client) until stopped() is true. With history: the matching past ones first."""
        follower = queue.Queue(maxsize=FOLLOWER_BACKLOG)
        with self._lock:
            past = [flow for flow in self._history if wanted(flow)] if with_history else []
            self._followers.add(follower)
        try:
            yield from past
            while not stopped() and not self._stop.is_set():
                try:
                    flow = follower.get(timeout=idle)
                except queue.Empty:
                    yield None
                    continue
                if wanted(flow):
                    yield flow
        finally:
            with self._lock:
                self._followers.discard(follower)

    def status(self):
        """What the kernel emitted and lost, and what the agent received and lost."""
        kernel = self.datapath.event_stats()
        with self._lock:
            return {
                "node": self.node,
                "limit": self.datapath.event_limit(),
                "kernel": kernel,
                "lost": kernel["rate_limited"] + kernel["ring_full"] + self._lost_by_followers,
                "received": self._received,
                "lost_by_slow_followers": self._lost_by_followers,
                "malformed": self._malformed,
                "history": len(self._history),
                "history_max": self._history.maxlen,
                "followers": len(self._followers),
            }


def _iso(epoch_ns):
    moment = datetime.datetime.fromtimestamp(epoch_ns / 1e9, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

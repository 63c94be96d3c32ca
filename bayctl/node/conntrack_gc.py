"""The agent's share of conntrack: the node's lifetimes, and deleting expired entries.

The datapath ignores an expired entry on lookup (policy/lib/conntrack.h), so removing it is
housekeeping, kept off the packet path: a daemon thread walks the table every `interval`
seconds and deletes what expired. The LRU map also evicts its oldest entries when full.
Lifetimes default to BAYCTL_CT_DEFAULT_* (policy/include/bayctl_maps.h) and are set per node
with `--conntrack-timeouts tcp_syn=60,tcp_established=21600,tcp_closing=10,other=60`
(any subset), written into the datapath's bayctl_ct_timeouts map at agent start.
"""

import argparse
import logging
import threading

from bayctl.errors import NodeError
from bayctl.node.datapath import CT_DEFAULT_TIMEOUTS, CT_TIMEOUT_FIELDS

LOG = logging.getLogger(__name__)

DEFAULT_INTERVAL = 30.0  # seconds between walks; short against the 60 s SYN/UDP lifetimes


def parse_timeouts(text):
    """'tcp_syn=60,other=30' -> {"tcp_syn": 60, "other": 30}; one clear line if malformed."""
    timeouts = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in CT_TIMEOUT_FIELDS:
            raise NodeError(f"--conntrack-timeouts: {item!r} is not NAME=SECONDS with NAME one of "
                            f"{', '.join(CT_TIMEOUT_FIELDS)}")
        try:
            seconds = int(value)
        except ValueError:
            seconds = 0
        if not 1 <= seconds < 2**32:
            raise NodeError(f"--conntrack-timeouts: {name}={value.strip()!r}: seconds must be a whole "
                            "number from 1")
        timeouts[name] = seconds
    return timeouts


def _timeouts_argument(text):
    try:
        return parse_timeouts(text)
    except NodeError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--conntrack-timeouts: ")) from None


def add_arguments(parser):
    defaults = ",".join(f"{name}={CT_DEFAULT_TIMEOUTS[name]}" for name in CT_TIMEOUT_FIELDS)
    parser.add_argument("--conntrack-timeouts", default={}, type=_timeouts_argument,
                        metavar="NAME=SECONDS,...",
                        help=f"conntrack lifetimes of this node (idle seconds; default {defaults})")


class Collector:
    """Deletes expired conntrack entries every `interval` seconds until stop()."""

    def __init__(self, datapath, interval=DEFAULT_INTERVAL):
        self.datapath, self.interval = datapath, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conntrack-gc", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()

    def collect(self):
        return self.datapath.collect_expired_conntrack()

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                deleted = self.collect()
            except Exception as exc:  # a walk that fails must not end collection for good
                LOG.warning("conntrack collection failed: %s", exc)
                continue
            if deleted:
                LOG.debug("conntrack: %d expired entries deleted", deleted)


def start(datapath, timeouts=None, interval=DEFAULT_INTERVAL):
    """At agent start: write the node's lifetimes ({name: seconds}, or the option's text),
    then collect expired entries in the background. Returns the Collector."""
    if isinstance(timeouts, str):
        timeouts = parse_timeouts(timeouts)
    datapath.set_conntrack_timeouts(**(timeouts or {}))
    LOG.info("conntrack timeouts %s", datapath.conntrack_timeouts())
    return Collector(datapath, interval).start()

"""Real probes between network namespaces, and the responders that answer them.

The one probe engine of bayctl: `bayctl verify`'s node helper (bayctl.verify.node) and the
agent's functional tests measure with these functions, so both mean the same by "reached".

What "reached" means (one definition, here only): a probe reached its target when the
target's own network stack answered and that answer came back to the source. For TCP that
is an accepted connection *or a refusal* (the target's RST); for UDP the echo *or* the
target's ICMP port-unreachable; for ICMP the echo reply. A group policy decides which
packets pass, not whether a service listens: a refusal is a packet from the target that
crossed the datapath in both directions (the SYN and its reply). Counting a refusal as
dropped (as the retired `bayctl demo` did) would let a datapath that leaks denied traffic look
correct whenever nothing listens on the port; counting it as reached can only report *more*
passing traffic, so a leak is never hidden (fail closed). Probe endpoints listen on every
probed port (`Responder`), so refusals are rare and each result's detail says which answer came.
"""

import concurrent.futures
import os
import select
import socket
import struct
import threading
import time
from typing import Iterable, List, Optional, Sequence, Tuple

from bayctl.errors import NodeError
from bayctl.node.netns import run_in_netns

ICMP_PAYLOAD = b"bayctl-verify"
# Probes in flight at once in one process: each holds a thread (and, while it connects, a
# second one inside the source namespace) and a socket. 512 keeps a node's whole share of a
# 16-group matrix (17 targets x ~20 services) in one round, within default thread and fd limits.
MAX_WORKERS = 512


def probe(netns: Optional[str], ip: str, proto: str, port: Optional[int], timeout: float,
          ident: int = 0) -> Tuple[bool, str]:
    """(reached, detail) of one probe sent from inside `netns` (None: this namespace) to `ip`.

    `ident` tells concurrent ICMP probes' replies apart (any small integer unique per batch)."""
    try:
        if proto == "tcp":
            return run_in_netns(netns, _tcp_probe, ip, port, timeout)
        if proto == "udp":
            sock = run_in_netns(netns, socket.socket, socket.AF_INET, socket.SOCK_DGRAM)
            return _udp_probe(sock, ip, port, timeout)
        if proto == "icmp":
            sock = run_in_netns(netns, socket.socket, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            return _icmp_probe(sock, ip, ident, timeout)
        return False, f"unknown protocol {proto}"
    except (OSError, NodeError) as err:
        return False, f"error: {err}"


def probe_all(tasks: Sequence[Tuple[Optional[str], str, str, Optional[int]]], timeout: float,
              workers: Optional[int] = None) -> List[Tuple[bool, str, float]]:
    """[(reached, detail, seconds)] for each (netns, ip, proto, port) of `tasks`, all in flight
    at once (`workers`: at most that many; never more than MAX_WORKERS): a denied probe costs
    its whole timeout, so a batch costs about one timeout, not one each."""
    if not tasks:
        return []
    workers = min(workers or MAX_WORKERS, MAX_WORKERS, len(tasks))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_timed_probe, netns, ip, proto, port, timeout, index)
                   for index, (netns, ip, proto, port) in enumerate(tasks)]
        return [future.result() for future in futures]


def _timed_probe(*args):
    started = time.monotonic()
    reached, detail = probe(*args)
    return reached, detail, time.monotonic() - started


class Responder:
    """Listeners on TCP and UDP ports in any number of namespaces, served by one thread:
    TCP connections are accepted and closed, UDP datagrams echoed. `close()` removes them."""

    def __init__(self):
        self.sockets = []
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()  # listen() may be called from several threads at once

    def listen(self, netns: Optional[str], ports: dict) -> None:
        """Listen in `netns` on ports {"tcp": [...], "udp": [...]}. A port that something else
        holds already is left to it: that listener answers for us."""
        def make():
            made = []
            for kind, proto in ((socket.SOCK_STREAM, "tcp"), (socket.SOCK_DGRAM, "udp")):
                for port in ports.get(proto, []):
                    sock = socket.socket(socket.AF_INET, kind)
                    if kind == socket.SOCK_STREAM:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        sock.bind(("0.0.0.0", port))
                    except OSError:
                        sock.close()
                        continue
                    if kind == socket.SOCK_STREAM:
                        sock.listen(128)
                    made.append(sock)
            return made

        # A socket belongs to the namespace it was created in, whichever thread uses it later.
        made = run_in_netns(netns, make)
        with self._lock:
            self.sockets = self.sockets + made  # a new list: the serving thread iterates the old one
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="probe-responder", daemon=True)
                self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([s for s in self.sockets if s.fileno() >= 0], [], [], 0.2)
            for sock in ready:
                try:
                    if sock.type == socket.SOCK_STREAM:
                        conn, _ = sock.accept()
                        conn.close()
                    else:
                        data, peer = sock.recvfrom(2048)
                        sock.sendto(data, peer)
                except OSError:
                    continue

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for sock in self.sockets:
            sock.close()
        self.sockets = []
        self._stop.clear()


def ports_of(services: Iterable[Tuple[str, Optional[int]]]) -> dict:
    """{"tcp": [...], "udp": [...]}: what a Responder must listen on for `services`."""
    ports = {"tcp": set(), "udp": set()}
    for proto, port in services:
        if proto in ports:
            ports[proto].add(port)
    return {proto: sorted(values) for proto, values in ports.items()}


def _tcp_probe(ip, port, timeout):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((ip, port))
        return True, "connected"
    except ConnectionRefusedError:
        return True, "refused (reached the host, nothing listening)"
    except (socket.timeout, TimeoutError):
        return False, "no answer"
    except OSError as err:
        return False, err.strerror or str(err)
    finally:
        sock.close()


def _udp_probe(sock, ip, port, timeout):
    payload = os.urandom(8)
    try:
        sock.settimeout(timeout)
        sock.sendto(payload, (ip, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data, _ = sock.recvfrom(2048)
            if data == payload:
                return True, "echoed"
        return False, "no answer"
    except (socket.timeout, TimeoutError):
        return False, "no answer"
    except ConnectionRefusedError:
        return True, "port unreachable (reached the host)"
    finally:
        sock.close()


def _icmp_probe(sock, ip, ident, timeout):
    ident = (os.getpid() * 31 + int(ident)) & 0xFFFF
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + ICMP_PAYLOAD), ident, 1) + ICMP_PAYLOAD
    try:
        sock.settimeout(timeout)
        sock.sendto(packet, (ip, 0))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, "no echo reply"
            sock.settimeout(left)
            data, peer = sock.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            kind, _, _, reply_ident, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
            if kind == 0 and reply_ident == ident and peer[0] == ip:
                return True, "echo reply"
    except (socket.timeout, TimeoutError):
        return False, "no echo reply"
    finally:
        sock.close()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF

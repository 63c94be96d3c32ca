"""Traffic tools the datapath tests run inside namespaces (`python3 bdp_traffic.py VERB ...`).

    serve --tcp 80,443 --udp 53       echo servers; prints "ready" once every port is bound
    probe tcp|udp HOST PORT [--timeout S] [--sport PORT]
                                      exit 0 if the echo came back, 2 if the peer refused
                                      (RST, ICMP port unreachable), 1 if nothing came back;
                                      --sport: from this source port
    udp-stream HOST PORT              numbered datagrams until stdin closes; prints {"sent": N}
    udp-sink PORT                     counts numbered datagrams until stdin closes and the wire
                                      is quiet; prints {"received", "distinct", "max_seq"}
    tcp-stream HOST PORT              a counting byte pattern until stdin closes; prints {"sent"}
    tcp-sink PORT                     checks the pattern of one connection; prints
                                      {"received", "intact", "reset"}
Senders pace themselves (about 5000 messages/s) so nothing but the policy can lose packets.
"""

import argparse
import json
import selectors
import socket
import struct
import sys
import threading
import time

PACE_EVERY, PACE_SLEEP = 10, 0.002
CHUNK = 1024


def _stdin_closed_flag():
    closed = threading.Event()

    def wait():
        sys.stdin.read()
        closed.set()

    threading.Thread(target=wait, daemon=True).start()
    return closed


def serve(args):
    sel = selectors.DefaultSelector()
    for port in filter(None, args.tcp.split(",")):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", int(port)))
        s.listen(64)
        sel.register(s, selectors.EVENT_READ, "accept")
    for port in filter(None, args.udp.split(",")):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", int(port)))
        sel.register(s, selectors.EVENT_READ, "udp")
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if key.data == "accept":
                conn, _ = sock.accept()
                sel.register(conn, selectors.EVENT_READ, "tcp")
            elif key.data == "udp":
                data, peer = sock.recvfrom(65535)
                sock.sendto(data, peer)
            else:
                try:
                    data = sock.recv(65535)
                except OSError:
                    data = b""
                if data:
                    sock.sendall(data)
                else:
                    sel.unregister(sock)
                    sock.close()


def probe(args):
    kind = socket.SOCK_STREAM if args.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(args.timeout)
        if args.sport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", args.sport))
        try:
            s.connect((args.host, args.port))
            s.sendall(b"bayctl-probe")
            outcome = 0 if s.recv(64) == b"bayctl-probe" else 1
        except ConnectionRefusedError:
            outcome = 2
        except OSError:
            outcome = 1
    sys.exit(outcome)


def udp_stream(args):
    closed = _stdin_closed_flag()
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        while not closed.is_set():
            s.sendto(struct.pack("!Q", sent) + b"x" * 56, (args.host, args.port))
            sent += 1
            if sent % PACE_EVERY == 0:
                time.sleep(PACE_SLEEP)
    print(json.dumps({"sent": sent}), flush=True)


def udp_sink(args):
    closed = _stdin_closed_flag()
    seen, received = set(), 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE (root): a starved sink never overflows
        s.bind(("0.0.0.0", args.port))
        s.settimeout(0.5)
        print("ready", flush=True)
        quiet = 0
        while not (closed.is_set() and quiet >= 2):
            try:
                data = s.recv(2048)
            except socket.timeout:
                quiet += 1
                continue
            quiet = 0
            received += 1
            seen.add(struct.unpack("!Q", data[:8])[0])
    print(json.dumps({"received": received, "distinct": len(seen),
                      "max_seq": max(seen) if seen else -1}), flush=True)


def _pattern(offset, size):
    return bytes((offset + i) % 251 for i in range(size))


def tcp_stream(args):
    closed = _stdin_closed_flag()
    sent = 0
    with socket.create_connection((args.host, args.port), timeout=30) as s:
        while not closed.is_set():
            s.sendall(_pattern(sent, CHUNK))
            sent += CHUNK
            if (sent // CHUNK) % PACE_EVERY == 0:
                time.sleep(PACE_SLEEP)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # wait for the sink to close: everything sent was read
    print(json.dumps({"sent": sent}), flush=True)


def tcp_sink(args):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("0.0.0.0", args.port))
        server.listen(1)
        print("ready", flush=True)
        conn, _ = server.accept()
        received, intact, reset = 0, True, False
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except ConnectionResetError:
                    reset = True
                    break
                if not data:
                    break
                intact = intact and data == _pattern(received, len(data))
                received += len(data)
    print(json.dumps({"received": received, "intact": intact, "reset": reset}), flush=True)


def main():
    parser = argparse.ArgumentParser()
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("serve")
    p.add_argument("--tcp", default="")
    p.add_argument("--udp", default="")
    p.set_defaults(func=serve)
    p = verbs.add_parser("probe")
    p.add_argument("proto", choices=["tcp", "udp"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--sport", type=int, default=0)
    p.set_defaults(func=probe)
    for verb, func in (("udp-stream", udp_stream), ("tcp-stream", tcp_stream)):
        p = verbs.add_parser(verb)
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.set_defaults(func=func)
    for verb, func in (("udp-sink", udp_sink), ("tcp-sink", tcp_sink)):
        p = verbs.add_parser(verb)
        p.add_argument("port", type=int)
        p.set_defaults(func=func)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()

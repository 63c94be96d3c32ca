"""The eBPF datapath on the real kernel: namespaces on a bridge, the classifier on the bridge ports.

Topology (all in namespaces this module creates, prefix "bdp"): a switch namespace holding a
bridge; web1, web2 (group web), db (group db), other (group other) and ext (no group: external)
each joined to it by a veth. The classifier is attached, by a loader process that has exited,
on tc ingress and egress of every bridge port (inside the switch namespace).
Entries are built by hand with layout.PolicyKey.make: these tests pin down the datapath's
meaning of an entry, independent of the policy compiler.
"""

import ctypes
import json
import os
import socket
import struct
import subprocess
import sys
import time

import pytest
from harness.netlab import NetLab
from harness.prereq import require, require_root, require_tools

from bayctl.node import conntrack_gc
from bayctl.node.datapath import Datapath
from bayctl.policy import layout

pytestmark = pytest.mark.root

HERE = os.path.dirname(os.path.abspath(__file__))
TRAFFIC = os.path.join(HERE, "bdp_traffic.py")
REPO = os.path.dirname(os.path.dirname(HERE))

WEB, DB, OTHER = 10, 20, 30
EXTERNAL = layout.GROUP_EXTERNAL
TCP, UDP, ICMP = layout.PROTO_TCP, layout.PROTO_UDP, layout.PROTO_ICMP
SUBNET = "10.66.0"
HOSTS = {  # name -> (last octet, group or None for external)
    "web1": (1, WEB), "web2": (2, WEB), "db": (3, DB), "other": (4, OTHER), "ext": (5, None),
}
TCP_PORTS = [80, 5432, 7001, 8079, 8080, 8085, 8087, 8088, 8089]
UDP_PORTS = [53, 54, 7000, 7002, 7003]
CLOSED_PORT = 7005  # nobody listens here
REFUSED = 2


def ip_of(name):
    return f"{SUBNET}.{HOSTS[name][0]}"


def allow(src, dst, proto=None, port=None, rule_id=1, port_bits=16):
    """One allow entry: groups only (proto None), a protocol (port None), or a port prefix."""
    if proto is None:
        return layout.PolicyKey.make(layout.PREFIX_GROUPS_ONLY, src, dst, 0, 0), layout.PolicyValue(rule_id)
    if port is None:
        key = layout.PolicyKey.make(layout.PREFIX_PROTO_ONLY, src, dst, proto, 0)
        return key, layout.PolicyValue(rule_id)
    return (layout.PolicyKey.make(layout.PREFIX_PROTO_ONLY + port_bits, src, dst, proto, port),
            layout.PolicyValue(rule_id))


def port_range(src, dst, proto, lo, hi, rule_id=1):
    """The aligned port prefixes covering exactly lo..hi."""
    entries = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while lo + size - 1 > hi:
            size //= 2
        entries.append(allow(src, dst, proto, lo, rule_id, port_bits=16 - size.bit_length() + 1))
        lo += size
    return entries


class Lab:
    def __init__(self, netlab, pin_dir):
        self.netlab, self.pin_dir = netlab, pin_dir
        self.sw = netlab.netns("sw")
        netlab.bridge("br", netns=self.sw)
        self.ns, self.ports, self.veths = {}, {}, {}
        for name, (octet, _group) in HOSTS.items():
            self.ns[name] = netlab.netns(name)
            veth = netlab.veth(self.ns[name], f"{SUBNET}.{octet}/24", peer_netns=self.sw, bridge="br")
            self.ports[name], self.veths[name] = veth.peer, veth
        self.dp = Datapath(pin_dir=pin_dir)

    def traffic(self, name, *argv, **kwargs):
        return self.ns[name].run(sys.executable, TRAFFIC, *argv, **kwargs)

    def start(self, name, *argv):
        """Start a traffic verb in the background; servers and sinks are ready when this returns."""
        proc = self.ns[name].popen(sys.executable, TRAFFIC, *argv, stdin=subprocess.PIPE, text=True)
        if argv[0].endswith(("sink", "serve")):
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        return proc

    def probe(self, proto, src, dst, port, timeout=5.0, sport=0):
        """0: the echo came back; REFUSED: the peer refused (RST / port unreachable); 1: nothing."""
        return self.traffic(src, "probe", proto, ip_of(dst), port, "--timeout", timeout, "--sport", sport,
                            check=False).returncode

    def tcp(self, src, dst, port, timeout=5.0):
        return self.probe("tcp", src, dst, port, timeout) == 0

    def udp(self, src, dst, port, timeout=5.0):
        return self.probe("udp", src, dst, port, timeout) == 0

    def ping(self, src, dst, count=1, size=56, wait=2):
        return self.ns[src].run("busybox", "ping", "-c", count, "-W", wait, "-s", size, ip_of(dst),
                                check=False).returncode == 0

    def counters(self, src, dst):
        zero = dict.fromkeys(("allowed_packets", "allowed_bytes", "dropped_packets", "dropped_bytes"), 0)
        return self.dp.counters().get((src, dst), zero)


def _run_loader(pin_dir, netns_path, ports, endpoints):
    """Load, attach, register and apply "web reaches db on tcp/5432" in a separate Python
    process that then exits."""
    script = f"""
import sys
sys.path.insert(0, {REPO!r})
from bayctl.node.datapath import Datapath
from bayctl.policy import layout
dp = Datapath(pin_dir={pin_dir!r})
dp.load()
indexes = {{port: dp.attach(port, {netns_path!r}) for port in {ports!r}}}
for ip, (group, port) in {endpoints!r}.items():
    dp.set_endpoint(ip, group, ifindex=indexes[port])
dp.replace_policy([(layout.PolicyKey.make(64, {WEB}, {DB}, layout.PROTO_TCP, 5432), layout.PolicyValue(1))])
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


@pytest.fixture(scope="module")
def lab():
    require_root()
    require_tools("ip", "nsenter", "busybox", "tc", "clang")
    require(os.path.exists(Datapath().obj_path), "datapath object not built (pip install -e .)")
    with NetLab("bdp") as netlab:
        pin_dir = f"/sys/fs/bpf/bdp-{netlab.run_id}"
        lab = Lab(netlab, pin_dir)
        try:
            endpoints = {ip_of(name): (group, lab.ports[name])
                         for name, (_octet, group) in HOSTS.items() if group is not None}
            _run_loader(pin_dir, lab.sw.path, list(lab.ports.values()), endpoints)
            servers = [lab.start(name, "serve", "--tcp", ",".join(map(str, TCP_PORTS)),
                                 "--udp", ",".join(map(str, UDP_PORTS))) for name in HOSTS]
            assert all(proc.poll() is None for proc in servers)
            yield lab
        finally:
            for port in lab.ports.values():
                lab.dp.detach(port, lab.sw.path)
            lab.dp.unpin()


# ----- the loader ---------------------------------------------------------------------------

def test_loader_process_exited_but_pins_and_program_remain(lab):
    # enforcement by what the exited loader left behind, before this process opens any map
    assert lab.tcp("web1", "db", 5432)
    assert not lab.tcp("db", "web1", 5432, timeout=1)
    pins = set(os.listdir(lab.pin_dir))
    assert {layout.PIN_ENDPOINTS, layout.PIN_POLICY, layout.PIN_CONNTRACK, layout.PIN_COUNTERS,
            layout.PIN_DROPS, layout.PIN_PROG} <= pins
    for port in lab.ports.values():
        for direction in ("ingress", "egress"):
            shown = lab.sw.run("tc", "filter", "show", "dev", port, direction).stdout
            assert "bayctl_tc" in shown and "direct-action" in shown, (port, direction, shown)
    assert lab.dp.endpoints() == {ip_of(n): g for n, (_o, g) in HOSTS.items() if g is not None}


def test_reload_reuses_pinned_maps(lab):
    lab.dp.replace_policy([allow(WEB, DB, TCP, 5432, rule_id=41)])
    before = lab.dp.endpoints()
    again = Datapath(pin_dir=lab.pin_dir)
    again.load()  # a restarted agent: same maps, same policy, enforcement never stopped
    assert again.endpoints() == before
    assert again.policy_loaded()
    assert lab.tcp("web1", "db", 5432)
    again.close()


# ----- verdicts -----------------------------------------------------------------------------

def test_no_policy_fails_closed(lab):
    lab.dp.clear_policy()
    assert not lab.dp.policy_loaded()
    before_pair, before = lab.counters(WEB, DB), lab.dp.drops()
    assert not lab.ping("web1", "db")
    assert not lab.tcp("web1", "db", 5432, timeout=1)
    after = lab.dp.drops()
    assert after["NO_POLICY"] > before["NO_POLICY"]
    assert after["POLICY"] == before["POLICY"]
    assert lab.counters(WEB, DB)["allowed_packets"] == before_pair["allowed_packets"]


def test_empty_policy_denies_everything(lab):
    lab.dp.replace_policy([])
    assert lab.dp.policy_loaded()
    before = lab.dp.drops()
    assert not lab.ping("web1", "db")
    assert lab.dp.drops()["POLICY"] == before["POLICY"] + 1


def test_web_reaches_db_on_5432_db_cannot_reach_web(lab):
    lab.dp.replace_policy([allow(WEB, DB, TCP, 5432), allow(WEB, DB, UDP, 53), allow(WEB, OTHER, ICMP)])
    assert lab.tcp("web1", "db", 5432)           # the reply (the echo) passes too
    assert lab.tcp("web2", "db", 5432)
    assert lab.udp("web1", "db", 53)
    assert lab.ping("web1", "other")
    assert not lab.tcp("web1", "db", 80, timeout=1)    # another port
    assert not lab.udp("web1", "db", 54, timeout=1)
    assert not lab.tcp("db", "web1", 5432, timeout=1)  # the other direction
    assert not lab.ping("other", "web1")
    assert not lab.ping("web1", "db")                 # a protocol not allowed
    assert not lab.tcp("other", "db", 5432, timeout=1)  # another group
    assert not lab.tcp("web1", "web2", 80, timeout=1)   # intra-group is not implicit


def test_wildcard_protocol_and_port(lab):
    lab.dp.replace_policy([allow(WEB, OTHER), allow(DB, WEB, TCP)])
    assert lab.ping("web1", "other")
    assert lab.tcp("web1", "other", 8089)
    assert lab.udp("web2", "other", 7002)
    assert lab.tcp("db", "web1", 80)
    assert lab.tcp("db", "web2", 8088)
    assert not lab.udp("db", "web1", 53, timeout=1)   # tcp only
    assert not lab.ping("db", "web1")


def test_port_range_as_prefixes(lab):
    entries = port_range(WEB, DB, TCP, 8080, 8088)
    assert [e[0].prefixlen for e in entries] == [61, 64]   # 8080-8087 and 8088
    lab.dp.replace_policy(entries)
    for port in (8080, 8085, 8087, 8088):
        assert lab.tcp("web1", "db", port), port
    for port in (8079, 8089):
        assert not lab.tcp("web1", "db", port, timeout=1), port


def test_external_peers_are_group_zero(lab):
    lab.dp.replace_policy([allow(EXTERNAL, DB, TCP, 5432), allow(WEB, EXTERNAL, UDP, 53)])
    assert lab.tcp("ext", "db", 5432)
    assert lab.udp("web1", "ext", 53)
    assert not lab.tcp("ext", "web1", 5432, timeout=1)
    assert not lab.udp("db", "ext", 53, timeout=1)


def test_policy_change_cuts_established_flows(lab):
    lab.dp.replace_policy([allow(WEB, DB, UDP, 7000)])
    sock_script = f"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
s.connect(({ip_of('db')!r}, 7000))
for line in sys.stdin:
    s.send(b"x")
    try:
        print(s.recv(16) == b"x", flush=True)
    except OSError:
        print(False, flush=True)
"""
    proc = lab.ns["web1"].popen(sys.executable, "-c", sock_script, stdin=subprocess.PIPE, text=True)

    def exchange():
        proc.stdin.write("go\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip() == "True"

    assert exchange()                        # the flow is established (conntrack entry exists)
    lab.dp.replace_policy([allow(WEB, DB, UDP, 53)])
    dropped = lab.dp.drops()["POLICY"]
    assert not exchange()                    # same 5-tuple, no longer allowed
    assert lab.dp.drops()["POLICY"] == dropped + 1
    lab.dp.replace_policy([allow(WEB, DB, UDP, 7000)])
    assert exchange()
    proc.stdin.close()
    proc.wait(timeout=10)


def test_compiled_policy_end_to_end(lab):
    """The policy compiler's entries mean to the datapath what the policy says, as ctypes
    pairs and packed."""
    from bayctl.policy import compile_policy, pack_policy, parse_policy

    policy = parse_policy(f"""
apiVersion: bayctl/v1
kind: GroupPolicy
groups: {{web: {WEB}, db: {DB}, other: {OTHER}}}
intraGroup: allow
rules:
  - {{from: web, to: db, ports: [tcp/5432, udp/7000-7002]}}
  - {{from: external, to: web, ports: [tcp/80]}}
""", source="<test>")
    lab.dp.replace_policy(compile_policy(policy))
    check_compiled_policy(lab)
    lab.dp.replace_policy([])
    lab.dp.replace_policy(pack_policy(policy))      # the agent's path: the same entries as bytes
    check_compiled_policy(lab)


def check_compiled_policy(lab):
    assert lab.tcp("web1", "db", 5432)
    assert lab.udp("web2", "db", 7002)
    assert lab.tcp("ext", "web1", 80)
    assert lab.tcp("web1", "web2", 8080)              # intraGroup: allow
    assert not lab.tcp("db", "web1", 5432, timeout=1)
    assert not lab.udp("web1", "db", 7003, timeout=1)
    assert not lab.tcp("ext", "db", 5432, timeout=1)
    assert not lab.tcp("other", "web1", 80, timeout=1)


PING_WITH_ID = """
import socket, struct, sys

def echo_request(ident):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"bayctl"
    total = sum(struct.unpack("!%dH" % (len(body) // 2), body))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return body[:2] + struct.pack("!H", ~total & 0xFFFF) + body[4:]

s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
s.sendto(echo_request(0x4242), (sys.argv[1], 0))
while True:
    try:
        data, peer = s.recvfrom(2048)
    except OSError:
        sys.exit(1)
    if peer[0] == sys.argv[1] and data[20] == 0:   # an echo reply from the peer
        sys.exit(0)
"""


def test_a_ping_is_never_taken_for_a_reply(lab):
    """db pings web1 with the very identifier of web1's allowed ping: still db's own, new flow."""
    lab.dp.replace_policy([allow(WEB, DB, ICMP)])
    assert lab.ns["web1"].python(PING_WITH_ID, ip_of("db"), check=False).returncode == 0
    before = lab.dp.drops()
    assert lab.ns["db"].python(PING_WITH_ID, ip_of("web1"), check=False).returncode != 0
    assert lab.dp.drops()["POLICY"] == before["POLICY"] + 1


def test_fragmented_datagrams_follow_their_first_fragment(lab):
    lab.dp.replace_policy([allow(WEB, DB, ICMP)])
    big = 4000  # three fragments each way over a 1500-byte MTU
    assert lab.ping("web1", "db", count=2, size=big)
    before = lab.dp.drops()
    assert not lab.ping("db", "web1", size=big, wait=1)
    after = lab.dp.drops()
    assert after["POLICY"] - before["POLICY"] == 3   # every fragment of the denied datagram
    assert after["FRAGMENT"] == before["FRAGMENT"]


def test_icmp_errors_travel_with_their_flow(lab):
    # db -> web UDP is allowed too: the forged error below goes where the policy allows traffic,
    # so only the "error about a flow nobody opened" check can drop it
    lab.dp.replace_policy([allow(WEB, DB, UDP, CLOSED_PORT), allow(WEB, DB, TCP, CLOSED_PORT),
                           allow(DB, WEB, UDP)])
    # db's port unreachable is an ICMP error db -> web: it passes as part of web's flow
    assert lab.probe("udp", "web1", "db", CLOSED_PORT) == REFUSED
    assert lab.probe("tcp", "web1", "db", CLOSED_PORT) == REFUSED      # the RST is a reply
    # an error quoting a flow that never existed relates to nothing and is dropped
    before, pair_before = lab.dp.drops(), lab.counters(DB, WEB)
    quoted = (bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]) + socket.inet_aton(ip_of("web1"))
              + socket.inet_aton(ip_of("db")) + struct.pack("!HHHH", 40000, 9999, 8, 0))
    lab.ns["db"].python(f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(bytes([3, 3, 0, 0, 0, 0, 0, 0]) + {quoted!r}, ({ip_of("web1")!r}, 0))
""")
    assert lab.dp.drops()["POLICY"] == before["POLICY"] + 1
    assert lab.counters(DB, WEB)["dropped_packets"] == pair_before["dropped_packets"] + 1
    assert lab.counters(DB, WEB)["allowed_packets"] == pair_before["allowed_packets"]


# ----- conntrack: TCP state and expiry ------------------------------------------------------

def _entry(lab, src, sport, dst, dport, proto=TCP):
    """The conntrack entry of the flow opened by src:sport -> dst:dport, or None."""
    for entry in lab.dp.conntrack():
        if (entry["saddr"], entry["sport"], entry["daddr"], entry["dport"], entry["proto"]) == \
                (ip_of(src), sport, ip_of(dst), dport, proto):
            return entry
    return None


def _seconds_left(entry):
    return (entry["expires_ns"] - time.monotonic_ns()) / 1e9


@pytest.fixture
def timeouts(lab):
    """Conntrack lifetimes a test sets; the defaults again afterwards."""
    yield lab.dp.set_conntrack_timeouts
    lab.dp.set_conntrack_timeouts()


def test_a_responders_syn_on_a_reversed_tuple_is_a_new_flow(lab, timeouts):
    """Issue 11 section 2: web -> db tcp/41001 only. web1:41000 -> db:41001 is refused (db's RST
    is a reply); web1 then listens on 41000. db connecting from 41001 to web1:41000 reverses the
    tuple of that tracked flow, but its SYN opens a connection: the policy denies it, exactly as
    it denies the same connect from 41002."""
    timeouts(tcp_closing=600)  # the refused flow's entry stays live throughout: reuse, not expiry
    lab.dp.replace_policy([allow(WEB, DB, TCP, 41001)])
    assert lab.probe("tcp", "web1", "db", 41001, sport=41000) == REFUSED
    listener = lab.start("web1", "serve", "--tcp", "41000")
    try:
        before = lab.dp.drops()["POLICY"]
        assert lab.probe("tcp", "db", "web1", 41000, timeout=1, sport=41001) == 1
        reused = lab.dp.drops()["POLICY"]
        assert reused > before
        assert lab.probe("tcp", "db", "web1", 41000, timeout=1, sport=41002) == 1
        assert lab.dp.drops()["POLICY"] > reused
        refused = _entry(lab, "web1", 41000, "db", 41001)
        assert refused is not None and _seconds_left(refused) > 0, "the reversed flow was live all along"
    finally:
        listener.terminate()
        listener.wait(timeout=10)


def test_a_responders_syn_the_policy_allows_replaces_the_old_flow(lab):
    """The same reuse where the policy allows db -> web tcp/42000: db's connection works both
    ways (web1's SYN-ACK is a reply of db's new flow) and the old entry is gone."""
    lab.dp.replace_policy([allow(WEB, DB, TCP, 42001), allow(DB, WEB, TCP, 42000)])
    assert lab.probe("tcp", "web1", "db", 42001, sport=42000) == REFUSED
    assert _entry(lab, "web1", 42000, "db", 42001) is not None
    listener = lab.start("web1", "serve", "--tcp", "42000")
    try:
        assert lab.probe("tcp", "db", "web1", 42000, sport=42001) == 0
    finally:
        listener.terminate()
        listener.wait(timeout=10)
    assert _entry(lab, "web1", 42000, "db", 42001) is None
    opened = _entry(lab, "db", 42001, "web1", 42000)
    assert opened is not None
    assert opened["flags"] & layout.CT_SYN_ORIG and opened["flags"] & layout.CT_SYN_REPLY


HOLD_CONNECTION = """
import socket, sys
s = socket.socket()
s.bind(("0.0.0.0", int(sys.argv[3])))
s.connect((sys.argv[1], int(sys.argv[2])))
s.sendall(b"held"); s.recv(16)
print("open", flush=True)
sys.stdin.read()
"""


def test_lifetimes_follow_tcp_state(lab, timeouts):
    """Handshake only: tcp_syn; established: tcp_established; FIN both ways or RST: tcp_closing;
    UDP: other. Set apart so each state's lifetime is told from the others."""
    require_tools("iptables")
    timeouts(tcp_syn=100, tcp_established=20000, tcp_closing=300, other=1000)
    lab.dp.replace_policy([allow(WEB, DB, TCP), allow(WEB, DB, UDP)])
    held = lab.ns["web1"].popen(sys.executable, "-c", HOLD_CONNECTION, ip_of("db"), 80, 43001,
                                stdin=subprocess.PIPE, text=True)
    try:
        assert held.stdout.readline().strip() == "open"
        assert lab.probe("tcp", "web1", "db", 80, sport=43002) == 0             # echo, then FIN both ways
        assert lab.probe("tcp", "web1", "db", CLOSED_PORT, sport=43003) == REFUSED  # RST
        assert lab.probe("udp", "web1", "db", 53, sport=43004) == 0
        lab.ns["db"].run("iptables", "-I", "INPUT", "-p", "tcp", "--dport", "7006", "-j", "DROP")
        try:   # the SYN passes the classifier, then db's own firewall swallows it
            assert lab.probe("tcp", "web1", "db", 7006, sport=43005, timeout=0.5) == 1
        finally:
            lab.ns["db"].run("iptables", "-D", "INPUT", "-p", "tcp", "--dport", "7006", "-j", "DROP")
        states = {
            "established": (_entry(lab, "web1", 43001, "db", 80), 20000),
            "fin": (_entry(lab, "web1", 43002, "db", 80), 300),
            "rst": (_entry(lab, "web1", 43003, "db", CLOSED_PORT), 300),
            "udp": (_entry(lab, "web1", 43004, "db", 53, proto=UDP), 1000),
            "syn": (_entry(lab, "web1", 43005, "db", 7006), 100),
        }
        for name, (entry, lifetime) in states.items():
            assert entry is not None, name
            # a lifetime counts from the flow's last packet: within the last minute
            assert lifetime - 60 < _seconds_left(entry) <= lifetime, (name, entry)
        closed = layout.CT_CLOSING_ORIG | layout.CT_CLOSING_REPLY
        assert states["established"][0]["flags"] & closed == 0
        assert states["fin"][0]["flags"] & closed == closed
        assert states["syn"][0]["flags"] == layout.CT_SYN_ORIG
        lab.dp.collect_expired_conntrack()
        for name, (entry, _lifetime) in states.items():   # a live entry is never collected
            key = (entry["saddr"], entry["sport"], entry["daddr"], entry["dport"], entry["proto"])
            assert any(key == (e["saddr"], e["sport"], e["daddr"], e["dport"], e["proto"])
                       for e in lab.dp.conntrack()), name
    finally:
        held.stdin.close()
        held.wait(timeout=10)


UDP_PEER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(1.0)
peer = (sys.argv[2], int(sys.argv[3]))
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "send":
        s.sendto(b"x", peer)
        print("sent", flush=True)
    else:
        try:
            s.recv(16)
            print(True, flush=True)
        except OSError:
            print(False, flush=True)
"""


def test_expired_entries_are_absent_then_collected(lab, timeouts):
    """A UDP flow whose entry expired: db's datagram back to web1's port is no reply any more
    (dropped); the agent's collector thread deletes the expired entry."""
    timeouts(other=1)
    lab.dp.replace_policy([allow(WEB, DB, UDP, 7009)])
    web = lab.ns["web1"].popen(sys.executable, "-c", UDP_PEER, 43100, ip_of("db"), 7009,
                               stdin=subprocess.PIPE, text=True)
    db = lab.ns["db"].popen(sys.executable, "-c", UDP_PEER, 7009, ip_of("web1"), 43100,
                            stdin=subprocess.PIPE, text=True)

    def say(proc, word):
        proc.stdin.write(word + "\n")
        proc.stdin.flush()
        return proc.stdout.readline().strip()

    try:
        assert web.stdout.readline().strip() == "ready" and db.stdout.readline().strip() == "ready"
        assert say(web, "send") == "sent" and say(db, "recv") == "True"
        assert say(db, "send") == "sent" and say(web, "recv") == "True"   # a reply while live
        entry = _entry(lab, "web1", 43100, "db", 7009, proto=UDP)
        assert entry is not None
        while _seconds_left(entry) > 0:       # the configured second runs out
            time.sleep(max(_seconds_left(entry), 0.01))
        before = lab.dp.drops()["POLICY"]
        assert say(db, "send") == "sent" and say(web, "recv") == "False"  # expired: no reply
        assert lab.dp.drops()["POLICY"] == before + 1
        assert _entry(lab, "web1", 43100, "db", 7009, proto=UDP) is not None  # still in the map
        collector = conntrack_gc.Collector(lab.dp, interval=0.05).start()  # the agent's, faster
        try:
            deadline = time.monotonic() + 30
            while _entry(lab, "web1", 43100, "db", 7009, proto=UDP) is not None:
                assert time.monotonic() < deadline, "the collector never deleted the expired entry"
                time.sleep(0.05)
        finally:
            collector.stop()
    finally:
        for proc in (web, db):
            proc.stdin.close()
            proc.wait(timeout=10)


def test_conntrack_timeouts_are_validated(lab, timeouts):
    from bayctl.errors import NodeError

    timeouts(tcp_established=7200)
    assert lab.dp.conntrack_timeouts() == {"tcp_syn": layout.CT_DEFAULT_TCP_SYN, "tcp_established": 7200,
                                           "tcp_closing": layout.CT_DEFAULT_TCP_CLOSING,
                                           "other": layout.CT_DEFAULT_OTHER}
    with pytest.raises(NodeError, match="unknown tcp_fin"):
        lab.dp.set_conntrack_timeouts(tcp_fin=3)
    with pytest.raises(NodeError, match="other: must be 1"):
        lab.dp.set_conntrack_timeouts(other=0)
    assert lab.dp.conntrack_timeouts()["tcp_established"] == 7200  # nothing changed


# ----- counters -----------------------------------------------------------------------------

def test_pair_counters_count_each_packet_once(lab):
    lab.dp.replace_policy([allow(WEB, DB, UDP, 53)])
    allowed_fwd, allowed_back = lab.counters(WEB, DB), lab.counters(DB, WEB)
    for _ in range(5):
        assert lab.udp("web1", "db", 53)
    for _ in range(3):
        assert not lab.udp("web1", "db", 54, timeout=0.5)
    fwd, back = lab.counters(WEB, DB), lab.counters(DB, WEB)
    # requests cross web1's port and db's port, yet count once; replies are db -> web
    assert fwd["allowed_packets"] - allowed_fwd["allowed_packets"] == 5
    assert back["allowed_packets"] - allowed_back["allowed_packets"] == 5
    assert fwd["dropped_packets"] - allowed_fwd["dropped_packets"] == 3
    # 14 bytes Ethernet + 20 IPv4 + 8 UDP + the 12-byte probe
    assert fwd["allowed_bytes"] - allowed_fwd["allowed_bytes"] == 5 * (14 + 20 + 8 + 12)


def _send_raw_frame(lab, name, ethertype, payload):
    code = f"""
import socket
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
s.send(b"\\xff" * 6 + b"\\x02\\x00\\x00\\x00\\x00\\x01" + {struct.pack('!H', ethertype)!r} + {payload!r})
"""
    lab.ns[name].python(code)


def test_drop_reasons(lab):
    lab.dp.replace_policy([allow(WEB, DB)])
    before = lab.dp.drops()
    ipv6 = bytes([0x60, 0, 0, 0, 0, 8, 17, 64]) + bytes(32) + bytes(8)
    _send_raw_frame(lab, "web1", 0x86DD, ipv6)
    _send_raw_frame(lab, "web1", 0x0800, bytes([0x45, 0, 0]))  # a truncated IPv4 header
    orphan = (bytes([0x45, 0, 0, 28, 0x12, 0x34, 0x00, 0x10, 64, 17, 0, 0]) + socket.inet_aton(ip_of("web1"))
              + socket.inet_aton(ip_of("db")) + bytes(8))  # offset 128 of a datagram never begun
    _send_raw_frame(lab, "web1", 0x0800, orphan)
    assert not lab.tcp("web1", "other", 80, timeout=1)
    after = lab.dp.drops()
    assert after["UNSUPPORTED"] - before["UNSUPPORTED"] == 1
    assert after["MALFORMED"] - before["MALFORMED"] == 1
    assert after["FRAGMENT"] - before["FRAGMENT"] == 1
    assert after["POLICY"] > before["POLICY"]


def test_arp_passes_without_policy(lab):
    lab.dp.clear_policy()
    lab.ns["web1"].ip("neigh", "flush", "dev", "eth0")
    assert not lab.ping("web1", "db")           # the echo is dropped, the ARP exchange before it is not
    assert "lladdr" in lab.ns["web1"].ip("neigh", "show", ip_of("db")).stdout


# ----- errors -------------------------------------------------------------------------------

def test_bad_input_is_a_clear_error(lab):
    from bayctl.errors import NodeError
    from bayctl.policy import PackedPolicy

    with pytest.raises(NodeError, match="not an IPv4 address"):
        lab.dp.set_endpoint("fe80::1", WEB)
    with pytest.raises(NodeError, match="group must be"):
        lab.dp.set_endpoint("10.66.0.9", 0)
    with pytest.raises(NodeError, match="prefixlen 65"):
        bad = layout.PolicyKey.make(64, WEB, DB, TCP, 1)
        bad.prefixlen = 65
        lab.dp.replace_policy([(bad, layout.PolicyValue(1))])
    good = layout.PolicyKey.make(64, WEB, DB, TCP, 1)
    with pytest.raises(NodeError, match="packed policy of 2 entries is malformed"):
        lab.dp.replace_policy(PackedPolicy(bytes(good) * 2, bytes(layout.PolicyValue(1)), 2))
    with pytest.raises(NodeError, match="packed policy of 1 entries is malformed"):
        lab.dp.replace_policy(PackedPolicy(bytes(bad), bytes(layout.PolicyValue(1)), 1))
    with pytest.raises(NodeError, match="no such interface"):
        lab.dp.attach("bdp-missing", lab.sw.path)
    lab.dp.detach("bdp-missing", lab.sw.path)           # idempotent
    lab.dp.detach("eth0", "/run/netns/bdp-no-such-ns")  # gone namespace: nothing to do
    lab.dp.delete_endpoint("10.66.0.99")                # absent: fine
    with pytest.raises(NodeError, match="not loaded"):
        Datapath(pin_dir=lab.pin_dir + "-absent").endpoints()


def test_incompatible_pin_is_named(lab):
    from bayctl.errors import NodeError
    from bayctl.node import libbpf

    stale = Datapath(pin_dir=lab.pin_dir + "-stale")
    os.makedirs(stale.pin_dir)
    try:
        fd = libbpf.map_create(6, "bayctl_drops", 4, 8, 3)  # a PERCPU_ARRAY of another shape
        libbpf.obj_pin(fd, os.path.join(stale.pin_dir, layout.PIN_DROPS))
        os.close(fd)
        with pytest.raises(NodeError, match="bayctl_drops.*parameter mismatch.*unpin"):
            stale.load()
    finally:
        stale.unpin()
    assert not os.path.exists(stale.pin_dir)


def test_conntrack_table_of_an_older_layout_is_replaced(lab):
    """Pins from before TCP state (16-byte entries) would make load() refuse; the table holds only
    flow state, so it is replaced and the node loads."""
    from bayctl.node import libbpf

    old = Datapath(pin_dir=lab.pin_dir + "-oldct")
    os.makedirs(old.pin_dir)
    try:
        fd = libbpf.map_create(9, "bayctl_conntrac", 16, 16, layout.MAX_CONNTRACK)  # LRU_HASH, old value
        libbpf.obj_pin(fd, os.path.join(old.pin_dir, layout.PIN_CONNTRACK))
        os.close(fd)
        old.load()
        fd = libbpf.obj_get(os.path.join(old.pin_dir, layout.PIN_CONNTRACK))
        try:
            assert libbpf.map_info(fd).value_size == ctypes.sizeof(layout.ConntrackValue)
        finally:
            os.close(fd)
    finally:
        old.unpin()


def test_run_in_netns_sees_that_namespace(lab):
    from bayctl.node.netns import NetnsGone, run_in_netns

    inside = {name for _, name in run_in_netns(lab.ns["web1"].path, socket.if_nameindex)}
    assert inside == {"lo", "eth0"}
    assert "eth0" not in {name for _, name in run_in_netns(lab.sw.path, socket.if_nameindex)}
    with pytest.raises(ZeroDivisionError):
        run_in_netns(lab.sw.path, lambda: 1 / 0)
    with pytest.raises(NetnsGone):
        run_in_netns("/run/netns/bdp-no-such-ns", socket.if_nameindex)


def test_endpoint_updates(lab):
    lab.dp.replace_policy([allow(WEB, DB, TCP, 5432)])
    assert not lab.tcp("other", "db", 5432, timeout=1)
    ifindex = lab.veths["other"].peer_ifindex()
    lab.dp.set_endpoint(ip_of("other"), WEB, ifindex=ifindex)   # other joins web
    try:
        assert lab.tcp("other", "db", 5432)
        lab.dp.delete_endpoint(ip_of("other"))                  # now external
        assert ip_of("other") not in lab.dp.endpoints()
        assert not lab.tcp("other", "db", 5432, timeout=1)
    finally:
        lab.dp.set_endpoint(ip_of("other"), OTHER, ifindex=ifindex)


# ----- atomic replacement under load --------------------------------------------------------

def _non_policy_losses(lab):
    """Drops the kernel makes outside the datapath (a starved softirq backlog, a full socket
    buffer): named in the failure message so a loss can be told from a policy drop."""
    softnet = sum(int(line.split()[1], 16) for line in open("/proc/net/softnet_stat"))
    snmp = lab.ns["db"].run("cat", "/proc/net/snmp").stdout.splitlines()
    udp = [line.split() for line in snmp if line.startswith("Udp:")]
    rcvbuf_errors = int(dict(zip(udp[0], udp[1]))["RcvbufErrors"])
    return {"softnet_dropped": softnet, "db_udp_rcvbuf_errors": rcvbuf_errors}


def _wait_until(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "traffic never started"
        time.sleep(0.05)


def _filler(count, seed):
    """Entries between groups no host is in, so two policies differ in bulk, not only in C."""
    return [allow(1000 + i % 500, 2000 + seed, TCP, 1 + i, rule_id=10_000 + i) for i in range(count)]


def test_atomic_replacement_under_continuous_traffic(lab):
    """Flow A (web1 -> db: a UDP stream, a TCP stream, pings) is allowed by both policies, flow B
    (other -> db) by neither, flow C (web1 -> other) only by the first. 200 swaps while A and B
    run: A loses nothing (every datagram arrives, the TCP byte stream is intact, and the
    datapath counted zero drops for web <-> db), B gets nothing through (the sink saw nothing and
    the datapath counted zero allowed packets other -> db), and C follows every swap."""
    common = [allow(WEB, DB, UDP, 7010), allow(WEB, DB, TCP, 7012), allow(WEB, DB, ICMP)]
    first = common + [allow(WEB, OTHER, UDP, 7002)] + _filler(1000, 1)
    second = common + _filler(1000, 2)
    lab.dp.replace_policy(first)

    a_udp_sink = lab.start("db", "udp-sink", "7010")
    b_udp_sink = lab.start("db", "udp-sink", "7011")
    a_tcp_sink = lab.start("db", "tcp-sink", "7012")
    a_pair, a_back, b_pair = lab.counters(WEB, DB), lab.counters(DB, WEB), lab.counters(OTHER, DB)
    losses_before = _non_policy_losses(lab)

    a_udp = lab.start("web1", "udp-stream", ip_of("db"), "7010")
    a_tcp = lab.start("web1", "tcp-stream", ip_of("db"), "7012")
    b_udp = lab.start("other", "udp-stream", ip_of("db"), "7011")
    pinger = lab.ns["web1"].popen("busybox", "ping", "-A", "-q", ip_of("db"))
    c_results = []
    try:
        # swap only once both flows are on the wire, and check they still were at the end
        _wait_until(lambda: lab.counters(WEB, DB)["allowed_packets"] > a_pair["allowed_packets"]
                    and lab.counters(OTHER, DB)["dropped_packets"] > b_pair["dropped_packets"])
        at_first_swap = lab.counters(WEB, DB)["allowed_packets"], lab.counters(OTHER, DB)["dropped_packets"]
        for swap in range(200):
            policy = second if swap % 2 == 0 else first
            lab.dp.replace_policy(policy)
            if swap % 50 in (48, 49):  # C follows the policy in force, both ways
                c_results.append((policy is first, lab.udp("web1", "other", 7002, timeout=0.5)))
        at_last_swap = lab.counters(WEB, DB)["allowed_packets"], lab.counters(OTHER, DB)["dropped_packets"]
    finally:
        pinger.terminate()
        outcomes = {}
        for name, proc in (("a_udp", a_udp), ("a_tcp", a_tcp), ("b_udp", b_udp)):
            out, _ = proc.communicate("", timeout=60)
            outcomes[name] = json.loads(out)
        sinks = (("a_udp_sink", a_udp_sink), ("b_udp_sink", b_udp_sink), ("a_tcp_sink", a_tcp_sink))
        for name, proc in sinks:
            out, _ = proc.communicate("", timeout=60)
            outcomes[name] = json.loads(out)
        pinger.wait(timeout=10)

    losses = {k: v - losses_before[k] for k, v in _non_policy_losses(lab).items()}
    print("atomic swap traffic:", outcomes, c_results, losses)
    assert at_last_swap[0] > at_first_swap[0] and at_last_swap[1] > at_first_swap[1]  # ran throughout
    # the datapath itself dropped nothing of flow A (exact, whatever the machine's load) ...
    assert lab.counters(WEB, DB)["dropped_packets"] == a_pair["dropped_packets"]
    assert lab.counters(DB, WEB)["dropped_packets"] == a_back["dropped_packets"]
    # ... and end to end every datagram arrived
    assert outcomes["a_udp"]["sent"] > 0 and outcomes["a_tcp"]["sent"] > 0 and outcomes["b_udp"]["sent"] > 0
    assert outcomes["a_udp_sink"]["distinct"] == outcomes["a_udp"]["sent"], (outcomes, losses)
    assert outcomes["a_udp_sink"]["max_seq"] == outcomes["a_udp"]["sent"] - 1
    assert outcomes["a_tcp_sink"] == {"received": outcomes["a_tcp"]["sent"], "intact": True, "reset": False}
    assert outcomes["b_udp_sink"]["received"] == 0
    assert lab.counters(WEB, DB)["allowed_packets"] > a_pair["allowed_packets"] + outcomes["a_udp"]["sent"]
    assert lab.counters(OTHER, DB)["allowed_packets"] == b_pair["allowed_packets"]
    assert lab.counters(OTHER, DB)["dropped_packets"] - b_pair["dropped_packets"] == outcomes["b_udp"]["sent"]
    assert c_results == [(allowed, allowed) for allowed, _ in c_results] and len(c_results) == 8


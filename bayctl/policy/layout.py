"""Python mirror of policy/include/bayctl_maps.h: map names, key/value layouts, constants.

Every structure names its C twin. tests/unit/test_layout.py checks sizes and field
offsets against the BTF of the compiled datapath object, so the two cannot drift.
Byte order follows the header: fields marked network order are stored big-endian
(ctypes.BigEndianStructure for whole big-endian keys, explicit conversion otherwise).
"""

import ctypes
import enum

GROUP_EXTERNAL = 0
GROUP_MIN, GROUP_MAX = 1, 65535

PROTO_ANY = 0
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_NUMBERS = {"icmp": PROTO_ICMP, "tcp": PROTO_TCP, "udp": PROTO_UDP}
PROTO_NAMES = {number: name for name, number in PROTO_NUMBERS.items()}

MAX_ENDPOINTS = 65536
MAX_POLICY = 262144
MAX_CONNTRACK = 262144
MAX_GROUP_PAIRS = 65536

PIN_ENDPOINTS = "bayctl_endpoints"
PIN_POLICY = "bayctl_policy"
PIN_POLICY_SHAPE = "bayctl_policy_shape"
PIN_CONNTRACK = "bayctl_conntrack"
PIN_CT_TIMEOUTS = "bayctl_ct_timeouts"
PIN_COUNTERS = "bayctl_counters"
PIN_DROPS = "bayctl_drops"
PIN_EVENTS = "bayctl_events"
PIN_EVENT_LIMIT = "bayctl_event_limit"
PIN_EVENT_BUCKET = "bayctl_event_bucket"
PIN_EVENT_STATS = "bayctl_event_stats"
PIN_PROG = "bayctl_tc"

EP_LOCAL = 0x1

POLICY_FULL_PREFIX = 64
# Prefix lengths of the LPM policy key (see the header's comment on bayctl_policy).
PREFIX_GROUPS_ONLY = 32          # any protocol, any port
PREFIX_PROTO_ONLY = 48           # this protocol, any port


class DropReason(enum.IntEnum):
    """enum bayctl_drop_reason."""

    POLICY = 0
    NO_POLICY = 1
    UNSUPPORTED = 2
    MALFORMED = 3
    FRAGMENT = 4


DROP_REASONS = len(DropReason)


class EndpointKey(ctypes.BigEndianStructure):
    """struct bayctl_endpoint_key."""

    _fields_ = [("addr", ctypes.c_uint32)]  # network order


class EndpointValue(ctypes.Structure):
    """struct bayctl_endpoint_value (host order)."""

    _fields_ = [
        ("group", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("ifindex", ctypes.c_uint32),
        ("netns_cookie", ctypes.c_uint64),
    ]


class PolicyKey(ctypes.Structure):
    """struct bayctl_policy_key: prefixlen host order, the rest network order."""

    _fields_ = [
        ("prefixlen", ctypes.c_uint32),
        ("src_group", ctypes.c_uint8 * 2),
        ("dst_group", ctypes.c_uint8 * 2),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
        ("dport", ctypes.c_uint8 * 2),
    ]

    @classmethod
    def make(cls, prefixlen, src_group, dst_group, proto, dport):
        key = cls()
        key.prefixlen = prefixlen
        key.src_group[:] = src_group.to_bytes(2, "big")
        key.dst_group[:] = dst_group.to_bytes(2, "big")
        key.proto = proto
        key.dport[:] = dport.to_bytes(2, "big")
        return key


class PolicyValue(ctypes.Structure):
    """struct bayctl_policy_value."""

    _fields_ = [("rule_id", ctypes.c_uint32)]


class ConntrackKey(ctypes.BigEndianStructure):
    """struct bayctl_ct_key (addresses and ports network order)."""

    _fields_ = [
        ("saddr", ctypes.c_uint32),
        ("daddr", ctypes.c_uint32),
        ("sport", ctypes.c_uint16),
        ("dport", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
    ]


class ConntrackValue(ctypes.Structure):
    """struct bayctl_ct_value (host order)."""

    _fields_ = [
        ("expires_ns", ctypes.c_uint64),
        ("src_group", ctypes.c_uint16),
        ("dst_group", ctypes.c_uint16),
        ("rule_id", ctypes.c_uint32),
        ("flags", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 7),
    ]


# ConntrackValue.flags: TCP state (BAYCTL_CT_*).
CT_SYN_ORIG = 0x01
CT_SYN_REPLY = 0x02
CT_SEEN_NON_SYN = 0x04
CT_CLOSING_ORIG = 0x08
CT_CLOSING_REPLY = 0x10


class ConntrackTimeouts(ctypes.Structure):
    """struct bayctl_ct_timeouts: lifetimes in seconds, host order; 0 = the default."""

    _fields_ = [
        ("tcp_syn", ctypes.c_uint32),
        ("tcp_established", ctypes.c_uint32),
        ("tcp_closing", ctypes.c_uint32),
        ("other", ctypes.c_uint32),
    ]


# BAYCTL_CT_DEFAULT_*: what a 0 field of ConntrackTimeouts means.
CT_DEFAULT_TCP_SYN = 60
CT_DEFAULT_TCP_ESTABLISHED = 21600
CT_DEFAULT_TCP_CLOSING = 10
CT_DEFAULT_OTHER = 60


class PairKey(ctypes.Structure):
    """struct bayctl_pair_key (host order)."""

    _fields_ = [("src_group", ctypes.c_uint16), ("dst_group", ctypes.c_uint16)]


class PairCounters(ctypes.Structure):
    """struct bayctl_pair_counters (host order)."""

    _fields_ = [
        ("allowed_packets", ctypes.c_uint64),
        ("allowed_bytes", ctypes.c_uint64),
        ("dropped_packets", ctypes.c_uint64),
        ("dropped_bytes", ctypes.c_uint64),
    ]


# Audit mode (bayctl_maps.h, lib/staged.h): a staged policy beside the active one.
PIN_STAGED = "bayctl_staged"
PIN_AUDIT = "bayctl_audit"


class AuditCounters(ctypes.Structure):
    """struct bayctl_audit_counters (host order)."""

    _fields_ = [
        ("would_drop_packets", ctypes.c_uint64),
        ("would_drop_bytes", ctypes.c_uint64),
        ("would_allow_packets", ctypes.c_uint64),
        ("would_allow_bytes", ctypes.c_uint64),
        ("would_drop_flows", ctypes.c_uint64),
        ("would_allow_flows", ctypes.c_uint64),
    ]


class FlowEvent(ctypes.Structure):
    """struct bayctl_flow_event: addresses and ports network order (raw bytes here), rest host."""

    _fields_ = [
        ("time_ns", ctypes.c_uint64),
        ("netns_cookie", ctypes.c_uint64),
        ("ifindex", ctypes.c_uint32),
        ("saddr", ctypes.c_uint8 * 4),
        ("daddr", ctypes.c_uint8 * 4),
        ("rule_id", ctypes.c_uint32),
        ("src_group", ctypes.c_uint16),
        ("dst_group", ctypes.c_uint16),
        ("sport", ctypes.c_uint8 * 2),
        ("dport", ctypes.c_uint8 * 2),
        ("proto", ctypes.c_uint8),
        ("verdict", ctypes.c_uint8),
        ("reason", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 5),
    ]


class VerdictKind(enum.IntEnum):
    """enum bayctl_verdict_kind: what a flow event reports."""

    ALLOWED = 0
    DENIED = 1
    WOULD_ALLOW = 2
    WOULD_DROP = 3


VERDICT_KINDS = len(VerdictKind)


class EventLimit(ctypes.Structure):
    """struct bayctl_event_limit (host order); all 0 = the defaults."""

    _fields_ = [
        ("rate", ctypes.c_uint32),
        ("burst", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


EVENTS_OFF = 0x1
EVENT_DEFAULT_RATE = 1000
EVENT_DEFAULT_BURST = 2000
EVENT_MAX_RATE = 1000000
EVENT_MAX_BURST = 1000000
EVENT_RING_BYTES = 1 << 20


class EventStat(enum.IntEnum):
    """enum bayctl_event_stat: where each event the classifier meant to emit went."""

    EMITTED = 0
    RATE_LIMITED = 1
    RING_FULL = 2


EVENT_STATS = len(EventStat)


# C struct name -> Python mirror, for the agreement test.
MIRRORS = {
    "bayctl_audit_counters": AuditCounters,
    "bayctl_endpoint_key": EndpointKey,
    "bayctl_endpoint_value": EndpointValue,
    "bayctl_policy_key": PolicyKey,
    "bayctl_policy_value": PolicyValue,
    "bayctl_ct_key": ConntrackKey,
    "bayctl_ct_value": ConntrackValue,
    "bayctl_ct_timeouts": ConntrackTimeouts,
    "bayctl_pair_key": PairKey,
    "bayctl_pair_counters": PairCounters,
    "bayctl_flow_event": FlowEvent,
    "bayctl_event_limit": EventLimit,
}

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bayctl_maps.h - the ONE definition of every map the datapath shares with
 * user space: names, key/value layouts, sizes and constants.
 *
 * The Python mirror is bayctl/policy/layout.py; every struct there names the
 * struct here it must match, and tests/unit/test_layout.py compares the two
 * against the BTF of the compiled object. Change both in the same commit.
 *
 * Byte order is stated on every field: addresses and the policy key are in
 * network byte order (the policy key must be, so that an LPM prefix over it
 * means "these groups, this protocol, this port prefix"); counters are host
 * order.
 */
#ifndef BAYCTL_MAPS_H
#define BAYCTL_MAPS_H

#include <linux/types.h>

/* Group tag of a peer that is in no group ("external" in the policy). */
#define BAYCTL_GROUP_EXTERNAL 0

/* IP protocol numbers as the policy key holds them; 0 = any protocol. */
#define BAYCTL_PROTO_ANY  0
#define BAYCTL_PROTO_ICMP 1
#define BAYCTL_PROTO_TCP  6
#define BAYCTL_PROTO_UDP  17

/* Map sizes. The policy inner map is created by user space with this size. */
#define BAYCTL_MAX_ENDPOINTS     65536
#define BAYCTL_MAX_POLICY        262144
#define BAYCTL_MAX_CONNTRACK     262144
#define BAYCTL_MAX_GROUP_PAIRS   65536

/* Pin names under the agent's bpffs directory (default /sys/fs/bpf/bayctl). */
#define BAYCTL_PIN_ENDPOINTS  "bayctl_endpoints"
#define BAYCTL_PIN_POLICY     "bayctl_policy"
/* The empty template of every inner policy map: pinned so that user space can
 * create inner maps with its BTF, which kernels like 6.1 require to match. */
#define BAYCTL_PIN_POLICY_SHAPE "bayctl_policy_shape"
#define BAYCTL_PIN_CONNTRACK  "bayctl_conntrack"
#define BAYCTL_PIN_CT_TIMEOUTS "bayctl_ct_timeouts"
#define BAYCTL_PIN_COUNTERS   "bayctl_counters"
#define BAYCTL_PIN_DROPS      "bayctl_drops"
/* Flow events (lib/events.h): the ring buffer, its rate limit and its counters. */
#define BAYCTL_PIN_EVENTS       "bayctl_events"
#define BAYCTL_PIN_EVENT_LIMIT  "bayctl_event_limit"
#define BAYCTL_PIN_EVENT_BUCKET "bayctl_event_bucket"
#define BAYCTL_PIN_EVENT_STATS  "bayctl_event_stats"
/* The tc classifier (bayctl_tc.bpf.c), pinned so attaching needs no reload. */
#define BAYCTL_PIN_PROG       "bayctl_tc"

/*
 * bayctl_endpoints: HASH, IPv4 address -> group.
 * Every address the node knows a group for: its own containers and, when the
 * bay distributes them, other nodes' containers. A miss means "external".
 */
struct bayctl_endpoint_key {
	__be32 addr;            /* network byte order */
};

struct bayctl_endpoint_value {
	__u16 group;            /* host order, 1..65535 */
	__u16 flags;            /* BAYCTL_EP_* */
	__u32 ifindex;          /* local interface, 0 for a remote endpoint */
	__u64 netns_cookie;     /* host order: that interface's namespace, 0 = not known */
};
/* (ifindex, netns_cookie) is the interface the classifier is attached to for
 * this endpoint: a packet between two local endpoints crosses two hooks and is
 * counted only at its sender's (lib/endpoints.h); with ifindex 0 every hook
 * counts it. The cookie (SO_NETNS_COOKIE in user space) is needed because an
 * ifindex is unique only within one namespace. */

#define BAYCTL_EP_LOCAL 0x1

/*
 * bayctl_policy: ARRAY_OF_MAPS with one slot (index 0) holding an LPM_TRIE
 * of allow entries. A new policy is written into a fresh inner map which then
 * replaces slot 0 in one update: every packet sees either the whole old or the
 * whole new policy, and the kernel keeps the old inner map alive until no
 * program can still be reading it. An empty slot means "no policy": deny all.
 *
 * Inner key: an LPM key over {src group, dst group, proto, pad, dport}, all
 * big-endian so a prefix reads left to right:
 *   prefixlen 32      any protocol, any port between the two groups
 *   prefixlen 48      this protocol (pad is always 0), any port
 *   prefixlen 48 + n  this protocol, destination ports sharing n leading bits
 *   prefixlen 64      this protocol, this one port
 * Port ranges are compiled into the few prefixes that cover them exactly.
 * The datapath looks up with prefixlen 64 and the packet's real values (dport
 * 0 for protocols without ports); any match allows.
 */
struct bayctl_policy_key {
	__u32 prefixlen;        /* host order, as LPM_TRIE requires */
	__be16 src_group;
	__be16 dst_group;
	__u8 proto;
	__u8 pad;               /* always 0 */
	__be16 dport;
};

struct bayctl_policy_value {
	__u32 rule_id;          /* host order: which rule allowed it (counters, debugging) */
};

#define BAYCTL_POLICY_FULL_PREFIX 64

/*
 * bayctl_conntrack: LRU_HASH keyed by a flow's ORIGINAL direction (the first
 * allowed packet's 5-tuple). A packet that matches an entry forwards is part
 * of that flow; one that matches it reversed is a reply. Either way the flow's
 * original direction is checked against the CURRENT policy, so a policy change
 * also cuts established flows it no longer allows, and replies of allowed
 * flows pass. The table never says "allowed", only "who opened this flow".
 * For ICMP echo both ports hold the echo identifier.
 *
 * An entry lives until expires_ns (bpf_ktime_get_ns(), i.e. CLOCK_MONOTONIC):
 * past it, the packet path treats the entry as absent. Every passing packet of
 * the flow pushes expires_ns to now + the lifetime of the flow's state (see
 * bayctl_ct_timeouts). Expired entries are deleted off the packet path: the
 * agent walks the map periodically (bayctl/node/conntrack_gc.py), and LRU
 * eviction reclaims the oldest when the map is full.
 *
 * TCP state (flags, BAYCTL_CT_*): SYN seen from each side, a packet without
 * SYN seen (the handshake completed), FIN/RST seen from each side. A SYN
 * without ACK from the responder's side is never a reply: it opens a new
 * flow, checked against the policy (lib/conntrack.h).
 */
struct bayctl_ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct bayctl_ct_value {
	__u64 expires_ns;       /* host order, CLOCK_MONOTONIC ns; at or before now = absent */
	__u16 src_group;        /* host order: groups when the flow was created */
	__u16 dst_group;
	__u32 rule_id;
	__u8 flags;             /* BAYCTL_CT_*: TCP state, 0 for other protocols */
	__u8 pad[7];
};

#define BAYCTL_CT_SYN_ORIG      0x01  /* SYN from the opener */
#define BAYCTL_CT_SYN_REPLY     0x02  /* SYN(+ACK) from the responder */
#define BAYCTL_CT_SEEN_NON_SYN  0x04  /* a packet without SYN: the handshake is over */
#define BAYCTL_CT_CLOSING_ORIG  0x08  /* FIN from the opener */
#define BAYCTL_CT_CLOSING_REPLY 0x10  /* FIN from the responder */
/* RST from either side sets both CLOSING bits: the connection is over. */

/*
 * bayctl_ct_timeouts: ARRAY with one slot (index 0): the node's conntrack
 * lifetimes in seconds, written by the agent (--conntrack-timeouts). A field
 * left 0 (e.g. nothing written yet) means its BAYCTL_CT_DEFAULT_* value.
 * Lifetimes are idle times: every passing packet starts its flow's anew.
 *   tcp_syn          handshake not completed (only SYNs seen)
 *   tcp_established  a packet without SYN seen, not both sides closed
 *   tcp_closing      FIN from both sides, or an RST
 *   other            UDP and ICMP echo
 * Defaults are Cilium's (CT_SYN_TIMEOUT, CT_CONNECTION_LIFETIME_TCP,
 * CT_CLOSE_TIMEOUT, CT_CONNECTION_LIFETIME_NONTCP); Linux nf_conntrack uses
 * 120 s SYN_SENT, 5 days ESTABLISHED, 10 s CLOSE, 30/120 s UDP.
 */
struct bayctl_ct_timeouts {
	__u32 tcp_syn;          /* host order, seconds */
	__u32 tcp_established;
	__u32 tcp_closing;
	__u32 other;
};

#define BAYCTL_CT_DEFAULT_TCP_SYN          60
#define BAYCTL_CT_DEFAULT_TCP_ESTABLISHED  21600
#define BAYCTL_CT_DEFAULT_TCP_CLOSING      10
#define BAYCTL_CT_DEFAULT_OTHER            60

/*
 * bayctl_counters: PERCPU_HASH, {src group, dst group} -> packet/byte counts.
 * User space sums over CPUs.
 */
struct bayctl_pair_key {
	__u16 src_group;        /* host order */
	__u16 dst_group;
};

struct bayctl_pair_counters {
	__u64 allowed_packets;
	__u64 allowed_bytes;
	__u64 dropped_packets;
	__u64 dropped_bytes;
};

/*
 * bayctl_drops: PERCPU_ARRAY indexed by drop reason -> packets dropped.
 */
enum bayctl_drop_reason {
	BAYCTL_DROP_POLICY      = 0,  /* no allow entry for the flow */
	BAYCTL_DROP_NO_POLICY   = 1,  /* no policy loaded: fail closed */
	BAYCTL_DROP_UNSUPPORTED = 2,  /* not IPv4 or ARP (e.g. IPv6) */
	BAYCTL_DROP_MALFORMED   = 3,  /* headers truncated */
	BAYCTL_DROP_FRAGMENT    = 4,  /* a later IPv4 fragment whose first was not seen */
	BAYCTL_DROP_REASONS     = 5,
};

/*
 * Audit mode (lib/staged.h). bayctl_staged: ARRAY_OF_MAPS with one slot (index
 * 0), a staged policy shaped exactly as bayctl_policy's inner map; evaluated
 * beside the active policy, it never decides a packet. Empty = nothing staged.
 * bayctl_audit: PERCPU_HASH, the flow's {src group, dst group} in its original
 * direction (struct bayctl_pair_key) -> the packets (and flows opened) whose
 * verdict the staged policy would change.
 * User space empties it whenever it stages a new policy.
 */
#define BAYCTL_PIN_STAGED "bayctl_staged"
#define BAYCTL_PIN_AUDIT  "bayctl_audit"

struct bayctl_audit_counters {
	__u64 would_drop_packets;   /* host order: active allows, staged denies */
	__u64 would_drop_bytes;
	__u64 would_allow_packets;  /* active denies, staged allows */
	__u64 would_allow_bytes;
	__u64 would_drop_flows;     /* of those packets, the ones opening a flow */
	__u64 would_allow_flows;
};

/*
 * Flow events (lib/events.h). The classifier reports each verdict on a NEW
 * flow (an allowed first packet, every denied packet) into bayctl_events, a
 * RINGBUF the agent reads (bayctl/node/flows.py). Replies and later packets of
 * a known flow are never reported. Emission is limited per node by a token
 * bucket (bayctl_event_limit, written by the agent; bayctl_event_bucket is the
 * kernel's own state), so a flood of denied packets costs the datapath one
 * locked compare and the agent nothing; what is not emitted is counted in
 * bayctl_event_stats, by cause.
 *
 * bayctl_flow_event: one record of the ring buffer.
 */
struct bayctl_flow_event {
	__u64 time_ns;          /* host order, CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 netns_cookie;     /* host order: namespace of the interface it was seen at */
	__u32 ifindex;          /* host order: that interface */
	__be32 saddr;           /* network order: as on the wire (for ICMP errors: the */
	__be32 daddr;           /*   quoted flow's tuple, i.e. the flow the error is about) */
	__u32 rule_id;          /* host order: the allowing rule, 0 when denied */
	__u16 src_group;        /* host order */
	__u16 dst_group;
	__be16 sport;           /* network order; ICMP echo: the identifier */
	__be16 dport;           /* network order: the port the policy saw (0: no ports) */
	__u8 proto;
	__u8 verdict;           /* enum bayctl_verdict_kind */
	__u8 reason;            /* enum bayctl_drop_reason when not allowed, else 0 */
	__u8 pad[5];
};

/* What a flow event reports. The staged-policy evaluation reports what its
 * policy WOULD do differently through the same function (lib/events.h). */
enum bayctl_verdict_kind {
	BAYCTL_VERDICT_ALLOWED     = 0,
	BAYCTL_VERDICT_DENIED      = 1,
	BAYCTL_VERDICT_WOULD_ALLOW = 2,
	BAYCTL_VERDICT_WOULD_DROP  = 3,
	BAYCTL_VERDICT_KINDS       = 4,
};

/*
 * bayctl_event_limit: ARRAY with one slot (index 0), written by the agent.
 * rate events per second refill a bucket of burst events. Nothing written
 * (both 0) means the BAYCTL_EVENT_DEFAULT_* values; BAYCTL_EVENTS_OFF stops
 * emission altogether (then nothing is counted as lost either).
 */
struct bayctl_event_limit {
	__u32 rate;             /* host order, events per second; 0 with burst > 0: no refill */
	__u32 burst;            /* host order, bucket size in events */
	__u32 flags;            /* BAYCTL_EVENTS_* */
	__u32 pad;
};

#define BAYCTL_EVENTS_OFF           0x1
#define BAYCTL_EVENT_DEFAULT_RATE   1000
#define BAYCTL_EVENT_DEFAULT_BURST  2000
/* Bounds the agent enforces (and the kernel clamps to): they keep the bucket's
 * nano-token arithmetic inside 64 bits. */
#define BAYCTL_EVENT_MAX_RATE       1000000
#define BAYCTL_EVENT_MAX_BURST      1000000
/* The ring buffer's size in bytes (a power of two, a multiple of the page):
 * ~21k events of 48 bytes (+8 bytes of record header each). */
#define BAYCTL_EVENT_RING_BYTES     (1 << 20)

/*
 * bayctl_event_stats: PERCPU_ARRAY indexed by enum bayctl_event_stat -> count.
 * Every event the classifier meant to emit lands in exactly one slot.
 */
enum bayctl_event_stat {
	BAYCTL_EVENT_EMITTED      = 0,  /* written into the ring buffer */
	BAYCTL_EVENT_RATE_LIMITED = 1,  /* the bucket was empty */
	BAYCTL_EVENT_RING_FULL    = 2,  /* the agent did not keep up: no room */
	BAYCTL_EVENT_STATS        = 3,
};

#endif /* BAYCTL_MAPS_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * conntrack.h - which direction of which flow is this packet?
 * Entries are keyed by a flow's ORIGINAL direction. A packet matching an
 * entry as is belongs to that flow; one matching it reversed is a reply.
 * The caller re-checks the original direction against the current policy
 * for every packet, so the table only says "who opened this flow", never
 * "this flow is allowed".
 *
 * Entries expire (bayctl_maps.h, bayctl_ct_timeouts): an entry past its
 * expires_ns is absent to the lookup, and the agent deletes such entries
 * off the packet path. TCP state decides the lifetime, modelled on Cilium's
 * bpf/lib/conntrack.h: SYN-only flows and closed ones live briefly, a flow
 * whose handshake completed lives long. A SYN without ACK from the
 * responder's side is never a reply: TCP opens a connection with it, so it is
 * a new flow (the tuple reused the other way round) and goes to the policy.
 */
#ifndef BAYCTL_LIB_CONNTRACK_H
#define BAYCTL_LIB_CONNTRACK_H

#include "classify.h"
#include "maps.h"

#define NSEC_PER_SEC 1000000000ULL

/* Push expires_ns forward at most this often: a write per packet would
 * bounce the entry's cache line between CPUs for nothing. State changes are
 * always written. */
#define CT_REFRESH_NS NSEC_PER_SEC

enum ct_direction {
	CT_NEW = 0,
	CT_ORIGINAL = 1,
	CT_REPLY = 2,
	/* A new flow whose reversed tuple is a tracked flow: a responder's SYN.
	 * Decided like CT_NEW; if it passes, it replaces that stale entry. */
	CT_NEW_REVERSED = 3,
};

struct ct_lookup {
	struct bayctl_ct_value *entry;  /* the flow's entry, when direction is ORIGINAL/REPLY */
	__u64 now;
	int direction;
};

static __always_inline void ct_key_forward(const struct flow *flow, struct bayctl_ct_key *key)
{
	key->saddr = flow->saddr;
	key->daddr = flow->daddr;
	key->sport = flow->sport;
	key->dport = flow->dport;
	key->proto = flow->proto;
}

static __always_inline void ct_key_reverse(const struct flow *flow, struct bayctl_ct_key *key)
{
	key->saddr = flow->daddr;
	key->daddr = flow->saddr;
	key->sport = flow->dport;
	key->dport = flow->sport;
	key->proto = flow->proto;
}

/* A SYN without ACK opens a TCP connection; anything else belongs to one. */
static __always_inline int tcp_opens(const struct flow *flow)
{
	return flow->proto == IPPROTO_TCP && (flow->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
}

static __always_inline __u64 seconds_or(__u32 configured, __u32 fallback)
{
	return (configured ? configured : fallback) * NSEC_PER_SEC;
}

/* How long an entry in this state lives without traffic. */
static __always_inline __u64 ct_lifetime(__u8 proto, __u8 flags)
{
	__u32 slot = 0;
	struct bayctl_ct_timeouts *t = bpf_map_lookup_elem(&bayctl_ct_timeouts, &slot);
	struct bayctl_ct_timeouts none = {};
	__u8 closed = BAYCTL_CT_CLOSING_ORIG | BAYCTL_CT_CLOSING_REPLY;

	if (!t)
		t = &none;
	if (proto != IPPROTO_TCP)
		return seconds_or(t->other, BAYCTL_CT_DEFAULT_OTHER);
	if ((flags & closed) == closed)
		return seconds_or(t->tcp_closing, BAYCTL_CT_DEFAULT_TCP_CLOSING);
	if (flags & BAYCTL_CT_SEEN_NON_SYN)
		return seconds_or(t->tcp_established, BAYCTL_CT_DEFAULT_TCP_ESTABLISHED);
	return seconds_or(t->tcp_syn, BAYCTL_CT_DEFAULT_TCP_SYN);
}

/* The TCP state after this packet, seen in `direction`. Flags 0 (a later
 * fragment, or an invalid segment) tell nothing. */
static __always_inline __u8 ct_next_flags(__u8 flags, const struct flow *flow, int direction)
{
	__u8 tcp = flow->tcp_flags;
	int reply = direction == CT_REPLY;

	if (flow->proto != IPPROTO_TCP || flow->related || !tcp)
		return flags;
	if (tcp & TCP_SYN) {
		/* the opener's new SYN on a closed connection: the tuple is reused, start afresh */
		if (!reply && !(tcp & TCP_ACK) && (flags & (BAYCTL_CT_CLOSING_ORIG | BAYCTL_CT_CLOSING_REPLY)))
			flags = 0;
		flags |= reply ? BAYCTL_CT_SYN_REPLY : BAYCTL_CT_SYN_ORIG;
	} else {
		flags |= BAYCTL_CT_SEEN_NON_SYN;
	}
	if (tcp & TCP_RST)
		flags |= BAYCTL_CT_CLOSING_ORIG | BAYCTL_CT_CLOSING_REPLY;
	else if (tcp & TCP_FIN)
		flags |= reply ? BAYCTL_CT_CLOSING_REPLY : BAYCTL_CT_CLOSING_ORIG;
	return flags;
}

static __always_inline int ct_alive(const struct bayctl_ct_value *entry, __u64 now)
{
	return entry->expires_ns > now;
}

/* Is this packet the original direction or a reply of a live flow? */
static __always_inline void ct_lookup(const struct flow *flow, struct ct_lookup *ct)
{
	struct bayctl_ct_key key = {};
	struct bayctl_ct_value *entry;

	ct->entry = 0;
	ct->direction = CT_NEW;
	ct->now = bpf_ktime_get_ns();
	if (!flow->tracked)
		return;
	if (!flow->echo_reply) {
		ct_key_forward(flow, &key);
		entry = bpf_map_lookup_elem(&bayctl_conntrack, &key);
		if (entry && ct_alive(entry, ct->now)) {
			ct->entry = entry;
			ct->direction = CT_ORIGINAL;
			return;
		}
	}
	if (flow->echo_request)
		return;  /* a peer's own ping that happens to reuse the identifier */
	ct_key_reverse(flow, &key);
	entry = bpf_map_lookup_elem(&bayctl_conntrack, &key);
	if (!entry || !ct_alive(entry, ct->now))
		return;
	if (tcp_opens(flow) && !flow->related) {
		ct->direction = CT_NEW_REVERSED;  /* the responder opens a connection of its own */
		return;
	}
	ct->entry = entry;
	ct->direction = CT_REPLY;
}

/* A passing packet of a tracked flow: advance its TCP state, extend its life. */
static __always_inline void ct_update(const struct flow *flow, const struct ct_lookup *ct)
{
	struct bayctl_ct_value *entry = ct->entry;
	__u8 flags;
	__u64 expires;

	if (!entry || flow->related)
		return;  /* an ICMP error neither advances nor prolongs its flow */
	flags = ct_next_flags(entry->flags, flow, ct->direction);
	expires = ct->now + ct_lifetime(flow->proto, flags);
	if (flags != entry->flags) {
		entry->flags = flags;
		entry->expires_ns = expires;  /* may shorten it: a closed connection */
	} else if (expires > entry->expires_ns + CT_REFRESH_NS) {
		entry->expires_ns = expires;
	}
}

static __always_inline void ct_create(const struct flow *flow, const struct ct_lookup *ct, __u16 src_group,
				      __u16 dst_group, __u32 rule_id)
{
	struct bayctl_ct_key key = {};
	struct bayctl_ct_value entry = {
		.src_group = src_group,
		.dst_group = dst_group,
		.rule_id = rule_id,
	};

	if (!flow->tracked || flow->echo_reply || flow->related)
		return;
	entry.flags = ct_next_flags(0, flow, CT_ORIGINAL);
	entry.expires_ns = ct->now + ct_lifetime(flow->proto, entry.flags);
	if (ct->direction == CT_NEW_REVERSED) {
		/* TCP allows one connection per address/port pair: the old flow is over */
		ct_key_reverse(flow, &key);
		bpf_map_delete_elem(&bayctl_conntrack, &key);
	}
	ct_key_forward(flow, &key);
	bpf_map_update_elem(&bayctl_conntrack, &key, &entry, BPF_ANY);
}

#endif /* BAYCTL_LIB_CONNTRACK_H */

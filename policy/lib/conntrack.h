/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * conntrack.h - which direction of which flow is this packet?
 * Entries are keyed by a flow's ORIGINAL direction. A packet matching an
 * entry as is belongs to that flow; one matching it reversed is a reply.
 * The caller re-checks the original direction against the current policy
 * for every packet, so the table only says "who opened this flow", never
 * "this flow is allowed".
 */
#ifndef BAYCTL_LIB_CONNTRACK_H
#define BAYCTL_LIB_CONNTRACK_H

#include "classify.h"
#include "maps.h"

/* Refresh last_seen at most this often: a write per packet would bounce
 * the entry's cache line between CPUs for nothing. */
#define CT_REFRESH_NS 1000000000ULL

enum ct_direction {
	CT_NEW = 0,
	CT_ORIGINAL = 1,
	CT_REPLY = 2,
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

static __always_inline void ct_touch(struct bayctl_ct_value *entry)
{
	__u64 now = bpf_ktime_get_ns();

	if (now - entry->last_seen_ns > CT_REFRESH_NS)
		entry->last_seen_ns = now;
}

/* Is this packet the original direction or a reply of a known flow? */
static __always_inline int ct_lookup(const struct flow *flow)
{
	struct bayctl_ct_key key = {};
	struct bayctl_ct_value *entry;

	if (!flow->tracked)
		return CT_NEW;
	if (!flow->echo_reply) {
		ct_key_forward(flow, &key);
		entry = bpf_map_lookup_elem(&bayctl_conntrack, &key);
		if (entry) {
			ct_touch(entry);
			return CT_ORIGINAL;
		}
	}
	if (flow->echo_request)
		return CT_NEW;  /* a peer's own ping that happens to reuse the identifier */
	ct_key_reverse(flow, &key);
	entry = bpf_map_lookup_elem(&bayctl_conntrack, &key);
	if (entry) {
		ct_touch(entry);
		return CT_REPLY;
	}
	return CT_NEW;
}

static __always_inline void ct_create(const struct flow *flow, __u16 src_group, __u16 dst_group,
				      __u32 rule_id)
{
	struct bayctl_ct_key key = {};
	struct bayctl_ct_value entry = {
		.last_seen_ns = bpf_ktime_get_ns(),
		.src_group = src_group,
		.dst_group = dst_group,
		.rule_id = rule_id,
	};

	if (!flow->tracked || flow->echo_reply)
		return;
	ct_key_forward(flow, &key);
	bpf_map_update_elem(&bayctl_conntrack, &key, &entry, BPF_ANY);
}

#endif /* BAYCTL_LIB_CONNTRACK_H */

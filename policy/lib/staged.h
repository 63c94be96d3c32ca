/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * staged.h - audit mode: a STAGED policy evaluated beside the active one.
 *
 * Slot 0 of bayctl_staged holds a policy exactly as bayctl_policy does (an LPM
 * trie of allow entries, swapped in whole by user space); an empty slot means
 * nothing is staged and costs one array lookup per packet. The staged policy
 * never decides a packet: it is asked the same question as the active one (the
 * flow's original direction, from conntrack kept by the ACTIVE policy), and
 * where its answer differs the packet is counted in bayctl_audit under its
 * FLOW's group pair (the original direction: a reply of a web -> db flow counts
 * for web -> db), as would-drop (active allows, staged denies) or would-allow
 * (active denies, staged allows). Counting follows count_pair's hook rule, so
 * packets are counted once: one the active policy drops at the hook that drops
 * it, one it lets through only at its sender's hook (endpoints.h, hook_counts).
 * A packet that opens a flow (no live conntrack entry) also counts as a flow.
 */
#ifndef BAYCTL_LIB_STAGED_H
#define BAYCTL_LIB_STAGED_H

#include "maps.h"
#include "policy.h"
#include "conntrack.h"
#include "endpoints.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct bayctl_policy_inner);
} bayctl_staged SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BAYCTL_MAX_GROUP_PAIRS);
	__type(key, struct bayctl_pair_key);
	__type(value, struct bayctl_audit_counters);
} bayctl_audit SEC(".maps");

enum audit_outcome {
	AUDIT_SAME = 0,        /* nothing staged, or the staged policy agrees */
	AUDIT_WOULD_DROP = 1,  /* active allows, staged denies */
	AUDIT_WOULD_ALLOW = 2, /* active denies, staged allows */
};

/* 1 if the staged policy allows the flow, 0 if it denies it, -1 if nothing is staged. */
static __always_inline int staged_allows(__u16 src_group, __u16 dst_group, __u8 proto, __be16 dport)
{
	__u32 slot = 0;
	void *rules = bpf_map_lookup_elem(&bayctl_staged, &slot);

	if (!rules)
		return -1;
	return policy_lookup(rules, src_group, dst_group, proto, dport) != 0;
}

static __always_inline void count_audit(__u16 src_group, __u16 dst_group, __u32 bytes, int outcome, int new_flow)
{
	struct bayctl_pair_key key = { .src_group = src_group, .dst_group = dst_group };
	struct bayctl_audit_counters *c = bpf_map_lookup_elem(&bayctl_audit, &key);

	if (!c) {
		struct bayctl_audit_counters zero = {};

		bpf_map_update_elem(&bayctl_audit, &key, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&bayctl_audit, &key);
		if (!c)
			return;  /* map full: lose the count, never the verdict */
	}
	if (outcome == AUDIT_WOULD_DROP) {
		c->would_drop_packets += 1;
		c->would_drop_bytes += bytes;
		c->would_drop_flows += new_flow;
	} else {
		c->would_allow_packets += 1;
		c->would_allow_bytes += bytes;
		c->would_allow_flows += new_flow;
	}
}

/*
 * Ask the staged policy what the active one was asked (orig_*: the flow's
 * original direction) and count a difference. Returns the audit_outcome; the
 * caller's verdict stands whatever it is.
 */
static __always_inline int audit_staged(__u16 orig_src, __u16 orig_dst, __u8 proto, __be16 orig_dport,
					int active_allows, const struct ct_lookup *ct,
					const struct bayctl_endpoint_value *src, struct __sk_buff *skb)
{
	int staged = staged_allows(orig_src, orig_dst, proto, orig_dport);
	int outcome, new_flow;

	if (staged < 0 || staged == active_allows)
		return AUDIT_SAME;
	outcome = active_allows ? AUDIT_WOULD_DROP : AUDIT_WOULD_ALLOW;
	/* a packet the active policy lets through is counted once, at its sender's hook */
	if (active_allows && !hook_counts(src, skb))
		return outcome;
	new_flow = ct->direction == CT_NEW || ct->direction == CT_NEW_REVERSED;
	count_audit(orig_src, orig_dst, skb->len, outcome, new_flow);
	return outcome;
}

#endif /* BAYCTL_LIB_STAGED_H */

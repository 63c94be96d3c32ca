/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * policy.h - does the current policy allow a flow's ORIGINAL direction?
 * Slot 0 of bayctl_policy holds the whole policy as one LPM trie; user space
 * replaces it in one map update, so a lookup sees the old or the new policy,
 * never a mixture. One full-length lookup finds the most specific matching
 * prefix, and any match is an allow entry (default deny).
 */
#ifndef BAYCTL_LIB_POLICY_H
#define BAYCTL_LIB_POLICY_H

#include "maps.h"

enum policy_verdict {
	POLICY_ALLOW = 0,
	POLICY_DENY = 1,
	POLICY_NONE = 2,  /* no policy loaded: fail closed */
};

/* The allow entry of one policy inner map (`rules`) that matches the flow, or NULL. */
static __always_inline struct bayctl_policy_value *policy_lookup(void *rules, __u16 src_group, __u16 dst_group,
								 __u8 proto, __be16 dport)
{
	struct bayctl_policy_key key = {
		.prefixlen = BAYCTL_POLICY_FULL_PREFIX,
		.src_group = bpf_htons(src_group),
		.dst_group = bpf_htons(dst_group),
		.proto = proto,
		.pad = 0,
		.dport = dport,
	};

	return bpf_map_lookup_elem(rules, &key);
}

static __always_inline int policy_check(__u16 src_group, __u16 dst_group, __u8 proto, __be16 dport,
					__u32 *rule_id)
{
	__u32 slot = 0;
	void *rules = bpf_map_lookup_elem(&bayctl_policy, &slot);
	struct bayctl_policy_value *allow;

	if (!rules)
		return POLICY_NONE;
	allow = policy_lookup(rules, src_group, dst_group, proto, dport);
	if (!allow)
		return POLICY_DENY;
	*rule_id = allow->rule_id;
	return POLICY_ALLOW;
}

#endif /* BAYCTL_LIB_POLICY_H */

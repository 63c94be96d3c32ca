/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* counters.h - per group-pair allowed/dropped packet and byte counters. */
#ifndef BAYCTL_LIB_COUNTERS_H
#define BAYCTL_LIB_COUNTERS_H

#include "maps.h"

static __always_inline void count_pair(__u16 src_group, __u16 dst_group, __u32 bytes, int allowed)
{
	struct bayctl_pair_key key = { .src_group = src_group, .dst_group = dst_group };
	struct bayctl_pair_counters *c = bpf_map_lookup_elem(&bayctl_counters, &key);

	if (!c) {
		struct bayctl_pair_counters zero = {};

		/* NOEXIST: another CPU may have created it meanwhile; either way
		 * the lookup below finds this CPU's (zeroed) slot. */
		bpf_map_update_elem(&bayctl_counters, &key, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&bayctl_counters, &key);
		if (!c)
			return;  /* map full: lose the count, never the verdict */
	}
	if (allowed) {
		c->allowed_packets += 1;
		c->allowed_bytes += bytes;
	} else {
		c->dropped_packets += 1;
		c->dropped_bytes += bytes;
	}
}

#endif /* BAYCTL_LIB_COUNTERS_H */

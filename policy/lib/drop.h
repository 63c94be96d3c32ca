/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* drop.h - every drop goes through here so it is counted by reason. */
#ifndef BAYCTL_LIB_DROP_H
#define BAYCTL_LIB_DROP_H

#include "maps.h"

static __always_inline int drop_packet(enum bayctl_drop_reason reason)
{
	__u32 index = reason;
	__u64 *packets = bpf_map_lookup_elem(&bayctl_drops, &index);

	if (packets)
		*packets += 1;  /* per-CPU slot: no atomic needed */
	return BAYCTL_DROP;
}

#endif /* BAYCTL_LIB_DROP_H */

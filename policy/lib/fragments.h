/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * fragments.h - give non-first IPv4 fragments the ports of their first one.
 *
 * Only the first fragment carries the transport header. It records its ports
 * under {addresses, protocol, IP id}; later fragments of the same datagram
 * borrow them and are then decided exactly like the first (conntrack, current
 * policy). A later fragment whose first was never seen has nothing to be
 * decided on and is dropped (BAYCTL_DROP_FRAGMENT): fail closed. The map is
 * the datapath's own (user space never reads it), so it is not pinned.
 */
#ifndef BAYCTL_LIB_FRAGMENTS_H
#define BAYCTL_LIB_FRAGMENTS_H

#include "common.h"

#define BAYCTL_MAX_FRAGMENTED 8192

struct frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u8 proto;
	__u8 pad;
};

struct frag_ports {
	__be16 sport;
	__be16 dport;
	__be16 policy_dport;
	__u8 tracked;
	__u8 echo_reply;
	__u8 echo_request;
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BAYCTL_MAX_FRAGMENTED);
	__type(key, struct frag_key);
	__type(value, struct frag_ports);
} bayctl_fragments SEC(".maps");

static __always_inline void frag_key_of(const struct iphdr *ip, struct frag_key *key)
{
	key->saddr = ip->saddr;
	key->daddr = ip->daddr;
	key->id = ip->id;
	key->proto = ip->protocol;
	key->pad = 0;
}

#endif /* BAYCTL_LIB_FRAGMENTS_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* endpoints.h - IPv4 address -> group; an unknown address is "external". */
#ifndef BAYCTL_LIB_ENDPOINTS_H
#define BAYCTL_LIB_ENDPOINTS_H

#include "maps.h"
#include "netns.h"

static __always_inline struct bayctl_endpoint_value *endpoint_of(__be32 addr)
{
	struct bayctl_endpoint_key key = { .addr = addr };

	return bpf_map_lookup_elem(&bayctl_endpoints, &key);
}

static __always_inline __u16 group_of(const struct bayctl_endpoint_value *ep)
{
	return ep ? ep->group : BAYCTL_GROUP_EXTERNAL;
}

/*
 * A packet between two local endpoints crosses two hooks (the sender's and
 * the receiver's interface); both enforce, but only one may count or the pair
 * counters would show it twice. The sender's hook counts when the sender is a
 * local endpoint whose interface is known; otherwise (a remote or unknown
 * sender, or ifindex not given) every hook the packet crosses counts.
 * An interface is its ifindex AND its namespace's cookie: with the program
 * attached inside containers, the receiver's eth0 usually has the sender's
 * ifindex too. Cookie 0 (not given) compares the ifindex alone.
 */
static __always_inline int hook_counts(const struct bayctl_endpoint_value *src, struct __sk_buff *skb)
{
	if (!(src && (src->flags & BAYCTL_EP_LOCAL) && src->ifindex))
		return 1;
	if (src->ifindex != skb->ifindex)
		return 0;
	return !src->netns_cookie || src->netns_cookie == netns_cookie_of(skb);
}

#endif /* BAYCTL_LIB_ENDPOINTS_H */

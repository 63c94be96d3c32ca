/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * netns.h - which network namespace a packet's interface is in.
 *
 * An ifindex names an interface only within its namespace (every container's
 * eth0 may be index 2), so "the sender's interface" is (ifindex, netns cookie).
 * bpf_get_netns_cookie() serves tc programs only from Linux 6.14; Debian's 6.1
 * refuses a program calling it. So the cookie is read from the kernel's own
 * structures, skb->dev->nd_net.net->net_cookie, with CO-RE: libbpf relocates
 * these field offsets against the running kernel's BTF at load time. It is the
 * same number SO_NETNS_COOKIE gives user space for that namespace.
 */
#ifndef BAYCTL_LIB_NETNS_H
#define BAYCTL_LIB_NETNS_H

#include "common.h"
#include <bpf/bpf_core_read.h>

/* Local views of kernel structs: only the fields read; "___bayctl" is a CO-RE
 * flavour suffix, matched to the kernel's struct net, net_device, sk_buff. */
struct net___bayctl {
	__u64 net_cookie;
} __attribute__((preserve_access_index));

struct net_device___bayctl {
	struct {
		struct net___bayctl *net;
	} nd_net;
} __attribute__((preserve_access_index));

struct sk_buff___bayctl {
	struct net_device___bayctl *dev;
} __attribute__((preserve_access_index));

/* The cookie of the namespace of the interface the packet is at (tc: skb->dev). */
static __always_inline __u64 netns_cookie_of(struct __sk_buff *ctx)
{
	/* A tc program's context is the kernel's sk_buff itself. */
	struct sk_buff___bayctl *skb = (void *)ctx;

	return BPF_CORE_READ(skb, dev, nd_net.net, net_cookie);
}

#endif /* BAYCTL_LIB_NETNS_H */

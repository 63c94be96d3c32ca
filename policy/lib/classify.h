/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * classify.h - parse an IPv4 packet into the flow tuple the datapath decides
 * on. Ports are read with bpf_skb_load_bytes so IP options (a variable header
 * length) need no verifier gymnastics.
 */
#ifndef BAYCTL_LIB_CLASSIFY_H
#define BAYCTL_LIB_CLASSIFY_H

#include "common.h"

#define IP_OFFSET 0x1fff

/* The start of an ICMP echo header. Declared here because <linux/icmp.h>
 * drags in libc headers that do not exist for the bpf target. */
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO      8

struct icmp_echo {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be16 id;
	__be16 sequence;
};

struct flow {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;        /* TCP/UDP ports; for ICMP echo both hold the identifier */
	__be16 dport;
	__be16 policy_dport; /* the port the policy sees: 0 for protocols without ports */
	__u8 proto;
	__u8 tracked;        /* 1 = has a conntrack entry of its own (TCP, UDP, ICMP echo) */
	__u8 echo_reply;     /* ICMP echo reply: only ever a reply, never opens a flow */
};

/* Returns 0, or the drop reason that makes the packet unacceptable. */
static __always_inline int classify_ipv4(struct __sk_buff *skb, struct flow *flow)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 l4;

	if ((void *)(ip + 1) > data_end)
		return BAYCTL_DROP_MALFORMED;
	if (ip->ihl < 5)
		return BAYCTL_DROP_MALFORMED;
	/* A non-first fragment carries no ports to decide on: IPv4-only v1
	 * does not reassemble, so it fails closed. */
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return BAYCTL_DROP_UNSUPPORTED;

	flow->saddr = ip->saddr;
	flow->daddr = ip->daddr;
	flow->proto = ip->protocol;
	l4 = sizeof(struct ethhdr) + ip->ihl * 4;

	switch (ip->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP: {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0)
			return BAYCTL_DROP_MALFORMED;
		flow->sport = ports[0];
		flow->dport = ports[1];
		flow->policy_dport = ports[1];
		flow->tracked = 1;
		break;
	}
	case IPPROTO_ICMP: {
		struct icmp_echo icmp;

		if (bpf_skb_load_bytes(skb, l4, &icmp, sizeof(icmp)) < 0)
			return BAYCTL_DROP_MALFORMED;
		if (icmp.type == ICMP_ECHO || icmp.type == ICMP_ECHOREPLY) {
			flow->sport = icmp.id;
			flow->dport = icmp.id;
			flow->tracked = 1;
			flow->echo_reply = icmp.type == ICMP_ECHOREPLY;
		}
		break;
	}
	default:
		break;  /* other protocols: decided on protocol alone */
	}
	return 0;
}

#endif /* BAYCTL_LIB_CLASSIFY_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * classify.h - parse an IPv4 packet into the flow tuple the datapath decides
 * on. Ports are read with bpf_skb_load_bytes so IP options (a variable header
 * length) need no verifier gymnastics.
 */
#ifndef BAYCTL_LIB_CLASSIFY_H
#define BAYCTL_LIB_CLASSIFY_H

#include "common.h"
#include "fragments.h"

#define IP_MF     0x2000
#define IP_OFFSET 0x1fff

/* The start of an ICMP echo header. Declared here because <linux/icmp.h>
 * drags in libc headers that do not exist for the bpf target. */
#define ICMP_ECHOREPLY      0
#define ICMP_DEST_UNREACH   3
#define ICMP_ECHO           8
#define ICMP_TIME_EXCEEDED  11
#define ICMP_PARAMETERPROB  12

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
	__u8 echo_request;   /* ICMP echo request: never a reply, whatever its identifier */
	__u8 related;        /* an ICMP error: the tuple is the packet it quotes, reversed */
	__u8 tcp_flags;      /* TCP: the flags byte (FIN SYN RST PSH ACK ...); 0 otherwise */
};

/* The TCP flags byte (offset 13 of the TCP header). */
#define TCP_FLAGS_OFFSET 13
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

static __always_inline int is_icmp_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

/*
 * An ICMP error (unreachable, fragmentation needed, time exceeded) quotes the
 * header of the packet that caused it. The error belongs to that packet's flow,
 * travelling the other way: describe it as the quoted tuple reversed, so that
 * conntrack finds the flow and the policy decides as for the flow itself.
 */
static __always_inline int classify_icmp_error(struct __sk_buff *skb, __u32 quoted, struct flow *flow)
{
	struct iphdr inner;
	__be16 ports[2];
	struct icmp_echo echo;
	__u32 l4;

	if (bpf_skb_load_bytes(skb, quoted, &inner, sizeof(inner)) < 0 || inner.ihl < 5)
		return BAYCTL_DROP_MALFORMED;
	l4 = quoted + inner.ihl * 4;
	flow->saddr = inner.daddr;
	flow->daddr = inner.saddr;
	flow->proto = inner.protocol;
	flow->related = 1;
	switch (inner.protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0)
			return BAYCTL_DROP_MALFORMED;
		flow->sport = ports[1];
		flow->dport = ports[0];
		flow->policy_dport = ports[0];
		flow->tracked = 1;
		break;
	case IPPROTO_ICMP:
		if (bpf_skb_load_bytes(skb, l4, &echo, sizeof(echo)) < 0)
			return BAYCTL_DROP_MALFORMED;
		if (echo.type != ICMP_ECHO)
			return BAYCTL_DROP_UNSUPPORTED;  /* an error about an error */
		flow->sport = echo.id;
		flow->dport = echo.id;
		flow->tracked = 1;
		break;
	default:
		return BAYCTL_DROP_UNSUPPORTED;  /* nothing to relate it to */
	}
	return 0;
}

/* The transport part of classify_ipv4: ports, ICMP echo ids, ICMP errors. */
static __always_inline int classify_l4(struct __sk_buff *skb, __u32 l4, struct flow *flow)
{
	switch (flow->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP: {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0)
			return BAYCTL_DROP_MALFORMED;
		flow->sport = ports[0];
		flow->dport = ports[1];
		flow->policy_dport = ports[1];
		flow->tracked = 1;
		if (flow->proto == IPPROTO_TCP &&
		    bpf_skb_load_bytes(skb, l4 + TCP_FLAGS_OFFSET, &flow->tcp_flags, 1) < 0)
			return BAYCTL_DROP_MALFORMED;
		break;
	}
	case IPPROTO_ICMP: {
		struct icmp_echo icmp;

		if (bpf_skb_load_bytes(skb, l4, &icmp, sizeof(icmp)) < 0)
			return BAYCTL_DROP_MALFORMED;
		if (is_icmp_error(icmp.type))
			return classify_icmp_error(skb, l4 + sizeof(icmp), flow);
		if (icmp.type == ICMP_ECHO || icmp.type == ICMP_ECHOREPLY) {
			flow->sport = icmp.id;
			flow->dport = icmp.id;
			flow->tracked = 1;
			flow->echo_reply = icmp.type == ICMP_ECHOREPLY;
			flow->echo_request = icmp.type == ICMP_ECHO;
		}
		break;
	}
	default:
		break;  /* other protocols: decided on protocol alone */
	}
	return 0;
}


/* Returns 0, or the drop reason that makes the packet unacceptable. */
static __always_inline int classify_ipv4(struct __sk_buff *skb, struct flow *flow)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + sizeof(struct ethhdr);
	struct frag_key fkey;
	struct frag_ports *first;
	__be16 frag_off;
	__u32 l4;
	int reason;

	if ((void *)(ip + 1) > data_end)
		return BAYCTL_DROP_MALFORMED;
	if (ip->ihl < 5)
		return BAYCTL_DROP_MALFORMED;

	flow->saddr = ip->saddr;
	flow->daddr = ip->daddr;
	flow->proto = ip->protocol;
	l4 = sizeof(struct ethhdr) + ip->ihl * 4;
	frag_off = ip->frag_off;
	frag_key_of(ip, &fkey);

	if (frag_off & bpf_htons(IP_OFFSET)) {
		/* a later fragment: no transport header, borrow the first one's ports */
		first = bpf_map_lookup_elem(&bayctl_fragments, &fkey);
		if (!first)
			return BAYCTL_DROP_FRAGMENT;
		flow->sport = first->sport;
		flow->dport = first->dport;
		flow->policy_dport = first->policy_dport;
		flow->tracked = first->tracked;
		flow->echo_reply = first->echo_reply;
		flow->echo_request = first->echo_request;
		return 0;
	}

	reason = classify_l4(skb, l4, flow);
	if (!reason && (frag_off & bpf_htons(IP_MF)) && !flow->related) {
		struct frag_ports ports = {
			.sport = flow->sport,
			.dport = flow->dport,
			.policy_dport = flow->policy_dport,
			.tracked = flow->tracked,
			.echo_reply = flow->echo_reply,
			.echo_request = flow->echo_request,
		};

		bpf_map_update_elem(&bayctl_fragments, &fkey, &ports, BPF_ANY);
	}
	return reason;
}

#endif /* BAYCTL_LIB_CLASSIFY_H */

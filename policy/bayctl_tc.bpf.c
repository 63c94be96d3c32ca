// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bayctl_tc.bpf.c - the group policy classifier for container interfaces.
 *
 * Attached (direct action) on tc ingress AND egress of every container
 * interface. For each packet: ARP passes; anything but IPv4 is dropped
 * (IPv4-only v1 fails closed); source and destination are classified into
 * groups through bayctl_endpoints (unknown = external, 0); conntrack says
 * whether the packet opens a flow or belongs to a live one (original or
 * reply; TCP state and expiry in conntrack.h); the flow's ORIGINAL direction
 * is then checked against the CURRENT policy, so replies of allowed flows
 * pass and a policy change cuts flows it no longer allows. ICMP errors travel
 * with the flow they quote (classify.h). No policy loaded, or no allow entry:
 * drop and count. Verdicts on new flows are reported as flow events
 * (lib/events.h); the calls are marked "FLOW EVENT".
 */
#include "lib/common.h"
#include "lib/maps.h"
#include "lib/classify.h"
#include "lib/endpoints.h"
#include "lib/conntrack.h"
#include "lib/policy.h"
#include "lib/counters.h"
#include "lib/drop.h"
#include "lib/staged.h"  /* staging: audit mode */
#include "lib/events.h"

static __always_inline int has_ports(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}

SEC("tc")
int bayctl_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct bayctl_endpoint_value *src, *dst;
	struct flow flow = {};
	__u16 src_group, dst_group, orig_src, orig_dst;
	__be16 orig_dport;
	struct ct_lookup ct;
	__u32 rule_id = 0;
	int reason, verdict, audit;

	if ((void *)(eth + 1) > data_end)
		return drop_packet(BAYCTL_DROP_MALFORMED);
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return BAYCTL_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return drop_packet(BAYCTL_DROP_UNSUPPORTED);

	reason = classify_ipv4(skb, &flow);
	if (reason) {
		/* FLOW EVENT: a packet refused before policy (e.g. an orphan fragment) */
		flow_event(skb, &flow, group_of(endpoint_of(flow.saddr)), group_of(endpoint_of(flow.daddr)),
			   0, BAYCTL_VERDICT_DENIED, reason);
		return drop_packet(reason);
	}

	src = endpoint_of(flow.saddr);
	dst = endpoint_of(flow.daddr);
	src_group = group_of(src);
	dst_group = group_of(dst);

	ct_lookup(&flow, &ct);
	if (ct.direction == CT_REPLY) {
		orig_src = dst_group;
		orig_dst = src_group;
		orig_dport = has_ports(flow.proto) ? flow.sport : 0;
	} else {
		orig_src = src_group;
		orig_dst = dst_group;
		orig_dport = flow.policy_dport;
	}

	/* An ICMP error about no known flow relates to nothing: it is not let in. */
	if (flow.related && ct.direction == CT_NEW) {
		count_pair(src_group, dst_group, skb->len, 0);
		/* FLOW EVENT */
		flow_event(skb, &flow, src_group, dst_group, 0, BAYCTL_VERDICT_DENIED, BAYCTL_DROP_POLICY);
		return drop_packet(BAYCTL_DROP_POLICY);
	}

	verdict = policy_check(orig_src, orig_dst, flow.proto, orig_dport, &rule_id);
	/* staging: a staged policy, if any, is asked the same question; it never changes the verdict */
	audit = audit_staged(orig_src, orig_dst, flow.proto, orig_dport, verdict == POLICY_ALLOW, &ct, src, skb);
	if (verdict == POLICY_ALLOW) {
		if (ct.entry) {
			ct_update(&flow, &ct);
		} else {
			ct_create(&flow, &ct, src_group, dst_group, rule_id);
			/* FLOW EVENT: a new flow (a reply or a known flow has ct.entry) */
			flow_event(skb, &flow, src_group, dst_group, rule_id, BAYCTL_VERDICT_ALLOWED, 0);
			/* FLOW EVENT: ... that the staged policy would deny (once per flow, as allowed ones) */
			if (audit == AUDIT_WOULD_DROP)
				flow_event(skb, &flow, src_group, dst_group, 0, BAYCTL_VERDICT_WOULD_DROP,
					   BAYCTL_DROP_POLICY);
		}
		if (hook_counts(src, skb))
			count_pair(src_group, dst_group, skb->len, 1);
		return BAYCTL_PASS;
	}
	count_pair(src_group, dst_group, skb->len, 0);
	reason = verdict == POLICY_NONE ? BAYCTL_DROP_NO_POLICY : BAYCTL_DROP_POLICY;
	/* FLOW EVENT */
	flow_event(skb, &flow, src_group, dst_group, 0, BAYCTL_VERDICT_DENIED, reason);
	/* FLOW EVENT: ... that the staged policy would let through (per packet, as denied ones) */
	if (audit == AUDIT_WOULD_ALLOW)
		flow_event(skb, &flow, src_group, dst_group, 0, BAYCTL_VERDICT_WOULD_ALLOW, 0);
	return drop_packet(reason);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

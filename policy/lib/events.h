/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * events.h - flow events: one record per verdict on a new flow, into the
 * bayctl_events ring buffer, behind a per-node token bucket.
 *
 * The bucket is one slot shared by every CPU, under a bpf_spin_lock: a flood
 * of denied packets then takes at most `burst` + `rate` x seconds events in
 * total, whatever the CPU count, and each packet pays one short locked
 * section. Tokens are kept in nano-tokens (tokens x 1e9) so that a refill is
 * elapsed_ns x rate, exact at any rate, with no division on the packet path
 * except the once-per-refill bound.
 *
 * flow_event() is the one way to emit: the classifier calls it for allowed
 * new flows and denied packets; the staged-policy evaluation calls it with
 * BAYCTL_VERDICT_WOULD_ALLOW / _WOULD_DROP.
 */
#ifndef BAYCTL_LIB_EVENTS_H
#define BAYCTL_LIB_EVENTS_H

#include "common.h"
#include "classify.h"
#include "netns.h"

#define NSEC_PER_SEC 1000000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, BAYCTL_EVENT_RING_BYTES);
} bayctl_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bayctl_event_limit);
} bayctl_event_limit SEC(".maps");

/* Never read or written: it makes clang emit the complete BTF of struct
 * bayctl_flow_event (a ring buffer has no value type), which
 * tests/unit/test_layout.py compares with the Python mirror. Not pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bayctl_flow_event);
} bayctl_event_shape SEC(".maps");

/* The kernel's own bucket state: not shared with user space (it holds a lock). */
struct event_bucket {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 tokens;           /* nano-tokens */
	__u64 last_ns;          /* last refill, CLOCK_MONOTONIC */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event_bucket);
} bayctl_event_bucket SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BAYCTL_EVENT_STATS);
	__type(key, __u32);
	__type(value, __u64);
} bayctl_event_stats SEC(".maps");

static __always_inline void count_event(enum bayctl_event_stat stat)
{
	__u32 index = stat;
	__u64 *count = bpf_map_lookup_elem(&bayctl_event_stats, &index);

	if (count)
		*count += 1;  /* per-CPU slot */
}

static __always_inline __u64 clamp_u64(__u64 value, __u64 max)
{
	return value > max ? max : value;
}

/* Take one token; 1 = emit. Also 0 when events are off (counted nowhere). */
static __always_inline int event_token(__u64 now, int *off)
{
	__u32 zero = 0;
	struct bayctl_event_limit *limit = bpf_map_lookup_elem(&bayctl_event_limit, &zero);
	struct event_bucket *bucket = bpf_map_lookup_elem(&bayctl_event_bucket, &zero);
	__u64 rate = BAYCTL_EVENT_DEFAULT_RATE, burst = BAYCTL_EVENT_DEFAULT_BURST;
	__u64 capacity, elapsed;
	int granted = 0;

	*off = 0;
	if (!bucket)
		return 0;
	if (limit) {
		if (limit->flags & BAYCTL_EVENTS_OFF) {
			*off = 1;
			return 0;
		}
		if (limit->rate || limit->burst) {
			rate = clamp_u64(limit->rate, BAYCTL_EVENT_MAX_RATE);
			burst = clamp_u64(limit->burst, BAYCTL_EVENT_MAX_BURST);
		}
	}
	capacity = burst * NSEC_PER_SEC;

	bpf_spin_lock(&bucket->lock);
	if (!bucket->last_ns) {
		bucket->tokens = capacity;  /* first use: a full bucket */
	} else if (now > bucket->last_ns && rate) {
		/* more than a full refill's worth of time changes nothing: bound it
		 * so elapsed x rate stays inside 64 bits */
		elapsed = clamp_u64(now - bucket->last_ns, capacity / rate + 1);
		bucket->tokens = clamp_u64(bucket->tokens + elapsed * rate, capacity);
	}
	if (bucket->tokens > capacity)
		bucket->tokens = capacity;  /* the agent lowered the burst */
	bucket->last_ns = now;
	if (bucket->tokens >= NSEC_PER_SEC) {
		bucket->tokens -= NSEC_PER_SEC;
		granted = 1;
	}
	bpf_spin_unlock(&bucket->lock);
	return granted;
}

/*
 * Report a verdict on a new flow. `flow` as classified (for an ICMP error:
 * the quoted flow); the groups are the packet's own; `reason` is the drop
 * reason for anything but BAYCTL_VERDICT_ALLOWED/_WOULD_ALLOW.
 */
static __always_inline void flow_event(struct __sk_buff *skb, const struct flow *flow, __u16 src_group,
				       __u16 dst_group, __u32 rule_id, enum bayctl_verdict_kind kind,
				       enum bayctl_drop_reason reason)
{
	struct bayctl_flow_event *event;
	__u64 now = bpf_ktime_get_ns();
	int off;

	if (!event_token(now, &off)) {
		if (!off)
			count_event(BAYCTL_EVENT_RATE_LIMITED);
		return;
	}
	event = bpf_ringbuf_reserve(&bayctl_events, sizeof(*event), 0);
	if (!event) {
		count_event(BAYCTL_EVENT_RING_FULL);
		return;
	}
	event->time_ns = now;
	event->netns_cookie = netns_cookie_of(skb);
	event->ifindex = skb->ifindex;
	event->saddr = flow->saddr;
	event->daddr = flow->daddr;
	event->rule_id = rule_id;
	event->src_group = src_group;
	event->dst_group = dst_group;
	event->sport = flow->sport;
	event->dport = flow->policy_dport;
	event->proto = flow->proto;
	event->verdict = kind;
	event->reason = (kind == BAYCTL_VERDICT_ALLOWED || kind == BAYCTL_VERDICT_WOULD_ALLOW) ? 0 : reason;
	__builtin_memset(event->pad, 0, sizeof(event->pad));
	bpf_ringbuf_submit(event, 0);
	count_event(BAYCTL_EVENT_EMITTED);
}

#endif /* BAYCTL_LIB_EVENTS_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * maps.h - the map instances, declared from the layouts in bayctl_maps.h.
 * The variable names are the pin names (BAYCTL_PIN_*): the loader pins each
 * map under the agent's bpffs directory by that name and reuses the pin when
 * it exists, so a restarted agent keeps enforcing with the same state.
 */
#ifndef BAYCTL_LIB_MAPS_H
#define BAYCTL_LIB_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BAYCTL_MAX_ENDPOINTS);
	__type(key, struct bayctl_endpoint_key);
	__type(value, struct bayctl_endpoint_value);
} bayctl_endpoints SEC(".maps");

/* The shape every inner policy map must have; user space creates the real
 * ones with exactly these parameters (the kernel refuses anything else).
 * One instance is declared (and stays empty; the program never reads it)
 * because clang only emits the complete BTF of the key and value types for a
 * struct that some variable has; libbpf needs it to size the outer map's
 * inner map, and tests/unit/test_layout.py reads it. It is pinned
 * (BAYCTL_PIN_POLICY_SHAPE): user space creates each inner map with this
 * map's BTF, because some kernels (Debian's 6.1) refuse a BTF-less inner map
 * in place of a BTF-described template. */
struct bayctl_policy_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BAYCTL_MAX_POLICY);
	__type(key, struct bayctl_policy_key);
	__type(value, struct bayctl_policy_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} bayctl_policy_shape SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct bayctl_policy_inner);
} bayctl_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BAYCTL_MAX_CONNTRACK);
	__type(key, struct bayctl_ct_key);
	__type(value, struct bayctl_ct_value);
} bayctl_conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bayctl_ct_timeouts);
} bayctl_ct_timeouts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BAYCTL_MAX_GROUP_PAIRS);
	__type(key, struct bayctl_pair_key);
	__type(value, struct bayctl_pair_counters);
} bayctl_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BAYCTL_DROP_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} bayctl_drops SEC(".maps");

#endif /* BAYCTL_LIB_MAPS_H */

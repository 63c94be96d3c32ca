/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* common.h - includes and small definitions every datapath header shares. */
#ifndef BAYCTL_COMMON_H
#define BAYCTL_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "../include/bayctl_maps.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* The verdicts of a direct-action tc classifier. */
#define BAYCTL_PASS TC_ACT_OK
#define BAYCTL_DROP TC_ACT_SHOT

#endif /* BAYCTL_COMMON_H */

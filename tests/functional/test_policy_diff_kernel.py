"""`policy diff` against the kernel: both policies compiled into real LPM tries, as the agent
writes them, and every packet worth asking looked up there with the classifier's full-length
key (root: creates BPF maps). Where the two tries answer differently exactly one diff row must
cover the packet, with the tries' verdicts; where they agree, none.
"""

import contextlib
import ctypes
import os

import pytest
from harness.diff_points import covering, points
from harness.policy_strategies import policies
from harness.prereq import require_root
from hypothesis import HealthCheck, given, settings

from bayctl.node import datapath, libbpf
from bayctl.policy import compile_policy, diff, layout
from bayctl.policy.diff import ALLOW, DENY, PORTED

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def kernel_maps():
    require_root()
    libbpf.lib()


@contextlib.contextmanager
def kernel_trie(policy):
    """A policy inner map as Datapath.replace_policy fills it."""
    keys, values, count = datapath._policy_arrays(compile_policy(policy))
    fd = libbpf.map_create(libbpf.MAP_TYPE_LPM_TRIE, "bdiff_test", ctypes.sizeof(layout.PolicyKey),
                           ctypes.sizeof(layout.PolicyValue), layout.MAX_POLICY, libbpf.BPF_F_NO_PREALLOC)
    try:
        datapath._fill(fd, keys, values, count)
        yield fd
    finally:
        os.close(fd)


def kernel_verdict(fd, src, dst, proto, port):
    """What the classifier's lookup (policy.h: full prefix, port 0 without ports) answers."""
    key = layout.PolicyKey.make(layout.POLICY_FULL_PREFIX, src, dst, proto, port if proto in PORTED else 0)
    return ALLOW if libbpf.map_lookup(fd, key, layout.PolicyValue()) else DENY


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(old=policies(), new=policies())
def test_diff_rows_are_the_kernel_lookups_that_differ(kernel_maps, old, new):
    changes = diff.diff_policies(old, new)
    with kernel_trie(old) as old_fd, kernel_trie(new) as new_fd:
        for packet in points(old, new):
            was, now = kernel_verdict(old_fd, *packet), kernel_verdict(new_fd, *packet)
            rows = covering(changes, *packet)
            expected = [] if was == now else [(was, now)]
            assert [(row.old, row.new) for row in rows] == expected, (packet, rows)

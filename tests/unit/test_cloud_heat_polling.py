"""The waiter's polling policies (bayctl.cloud.stacks): when to poll, when to fetch the stack."""

import pytest

from bayctl.cloud.stacks import AdaptivePolling


def _quiet(policy, n, action="CREATE"):
    """n quiet polls: (delay, fetch-the-stack?) after each."""
    out = []
    for _ in range(n):
        delay = policy.after_poll(False)
        out.append((delay, policy.want_stack(False, action)))
    return out


def test_adaptive_backs_off_to_the_cap_and_snaps_back_on_events():
    policy = AdaptivePolling(floor=1.0, factor=1.5, cap=15.0)
    delays = [d for d, _ in _quiet(policy, 10)]
    assert delays[:4] == [1.5, 2.25, 3.375, 5.0625]
    assert delays == sorted(delays) and max(delays) == 15.0 and delays[-3:] == [15.0] * 3
    assert policy.after_poll(True) == 1.0  # an event: back to the floor at once
    assert [d for d, _ in _quiet(policy, 2)] == [1.5, 2.25]


def test_adaptive_create_fetches_the_stack_only_at_the_cap_then_once_a_minute():
    policy = AdaptivePolling(floor=1.0, factor=1.5, cap=15.0)
    assert policy.after_poll(True) == 1.0 and not policy.want_stack(True, "CREATE")
    polls = _quiet(policy, 20)
    fetched = [i for i, (_, fetch) in enumerate(polls) if fetch]
    first_at_cap = next(i for i, (d, _) in enumerate(polls) if d == 15.0) + 1  # made with a 15 s delay
    assert fetched[0] == first_at_cap
    assert [b - a for a, b in zip(fetched, fetched[1:])] == [AdaptivePolling.CAP_POLLS_PER_STACK] * \
        (len(fetched) - 1)
    assert all(polls[i - 1][0] == 15.0 for i in fetched)  # never while the backoff is still short


def test_adaptive_delete_fetches_the_stack_once_per_quiet_spell():
    policy = AdaptivePolling(floor=2.0)
    policy.after_poll(True)
    assert [fetch for _, fetch in _quiet(policy, 3, "DELETE")] == [True, False, False]
    policy.after_poll(True)  # events again: the next quiet poll may mean "gone" again
    assert [fetch for _, fetch in _quiet(policy, 2, "DELETE")] == [True, False]


@pytest.mark.parametrize("floor,cap", [(2.0, 1.0), (5.0, 5.0)])
def test_adaptive_cap_below_the_floor_is_the_floor(floor, cap):
    policy = AdaptivePolling(floor=floor, cap=cap)
    assert {d for d, _ in _quiet(policy, 3)} == {floor}


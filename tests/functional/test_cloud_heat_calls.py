"""The waiter's API calls against the REAL Heat engine building bayctl's REAL templates (stand-ins
for Nova/Neutron): no event is fetched twice, and the stack itself is fetched only after an
events poll that brought nothing (a delete's end, or a long quiet spell)."""

import os
import re

import pytest
from harness.cloudtier.calls import CallRecorder

from bayctl.providers import BayRequest, get_provider
from bayctl.providers.heat import templates_dir

pytestmark = pytest.mark.cloud

STANDINS = os.path.join(templates_dir(), "environments", "standins.yaml")


@pytest.fixture
def recorded_conn(cloud_tier):
    from bayctl.cloud.connection import connect

    conn = connect(**cloud_tier.auth)
    recorder = CallRecorder(conn.session)
    yield conn, recorder
    conn.close()


def _waiter_calls(calls):
    """The calls a wait made: events polls and stack GETs (name/id), in order."""
    out = []
    for method, path, _status, events in calls:
        if method == "GET" and path.endswith("/events"):
            out.append(("events", events))
        elif method == "GET" and re.search(r"/stacks/[^/]+/[^/]+$", path):
            out.append(("stack", None))
    return out


def test_waiter_fetches_each_event_once_and_the_stack_only_after_a_quiet_poll(recorded_conn):
    conn, recorder = recorded_conn
    provider = get_provider("heat", conn, environments=[STANDINS], poll_interval=1)
    ref = provider.create(BayRequest(name="hp-calls", slaves=1, image="img", keypair="kp", master_flavor="m1",
                                     slave_flavor="m1", external_network="public", timeout=600))
    seen = []
    try:
        start = len(recorder.calls)
        assert provider.wait(ref, progress=seen.append, timeout=600).status == "CREATE_COMPLETE"
        create_calls = _waiter_calls(recorder.calls[start:])
    finally:
        start = len(recorder.calls)
        provider.delete(ref, progress=seen.append, timeout=300)
        delete_calls = _waiter_calls(recorder.calls[start:])

    assert seen[-1].status == "DELETE_COMPLETE" and any(p.status == "CREATE_COMPLETE" for p in seen)
    for calls in (create_calls, delete_calls):
        ids = [i for kind, events in calls if kind == "events" for i in events]
        assert ids and len(ids) == len(set(ids)), "an event was fetched twice"
        for before, (kind, _) in zip(calls, calls[1:]):
            if kind == "stack":
                assert before == ("events", []), "the stack was fetched though events had news"
    # The root stack's own CREATE_COMPLETE event ends the create; Heat drops a deleted stack's
    # last events, so only the stack can say DELETE_COMPLETE.
    assert create_calls[-1][0] == "events" and delete_calls[-1][0] == "stack"

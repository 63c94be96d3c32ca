#!/usr/bin/env python3
"""API calls and wall time of create + delete of a 3-slave bay against the local REAL tier.

Prints ONE JSON document. Side by side in the same run: bayctl's heat provider (events with
nested_depth + marker, one call per poll) and a naive waiter that, like many scripts, GETs
the stack and lists its nested resources on every poll. Every call is counted through a
hook on the keystoneauth session (auth requests included), per step and per endpoint.

    python3 bench/cloud.py                # starts the tier (1-3 min), runs, stops it
    BAYCTL_CLOUD_TIER_REUSE=/var/tmp/bayctl-cloud-dev/auth.json python3 bench/cloud.py
"""

import collections
import json
import os
import re
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

SLAVES = 3
POLL_INTERVAL = 2.0


class CallCounter:
    """Wraps Session.request: records (method, normalised path) of every HTTP call."""

    def __init__(self, session):
        self.calls = []
        original = session.request

        def counting(url, method, *args, **kwargs):
            resp = original(url, method, *args, **kwargs)
            full = getattr(resp, "url", None) or url
            self.calls.append((method, self._normalise(full), getattr(resp, "status_code", 0)))
            return resp
        session.request = counting

    @staticmethod
    def _normalise(url):
        path = urllib.parse.urlparse(url).path
        path = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "{id}", path)
        path = re.sub(r"/v1/[0-9a-f]{32}", "/v1/{project}", path)
        path = re.sub(r"/stacks/[^/]+/\{id\}", "/stacks/{name}/{id}", path)
        return path

    def mark(self):
        return len(self.calls)

    def since(self, mark):
        chunk = self.calls[mark:]
        by = collections.Counter(f"{m} {p}" for m, p, _ in chunk)
        return {"calls": len(chunk), "by_endpoint": dict(by.most_common())}


def naive_wait(hc, ref, action, interval):
    """What the provider avoids: stack GET + nested resource list every poll."""
    polls = 0
    while True:
        polls += 1
        try:
            stack = hc.stacks.get(ref)
        except Exception:
            return polls
        hc.resources.list(ref, nested_depth=5)
        if stack.stack_status in (f"{action}_COMPLETE", f"{action}_FAILED"):
            return polls
        time.sleep(interval)


def run(conn, counter, naive):
    from bayctl.cloud.heat_client import heat
    from bayctl.providers import BayRequest, get_provider
    from bayctl.providers.heat import templates_dir

    env = os.path.join(templates_dir(), "environments", "standins.yaml")
    steps = {}
    name = "bcl-bench-naive" if naive else "bcl-bench"
    request = BayRequest(name=name, slaves=SLAVES, image="img", keypair="kp", master_flavor="m1",
                         slave_flavor="m1", external_network="public", timeout=900)

    def step(label, fn):
        mark, t0 = counter.mark(), time.monotonic()
        result = fn()
        steps[label] = {"wall_s": round(time.monotonic() - t0, 2), **counter.since(mark)}
        return result

    provider = step("provider", lambda: get_provider("heat", conn, environments=[env],
                                                      poll_interval=POLL_INTERVAL))
    ref = step("create", lambda: provider.create(request))
    events = []
    if naive:
        step("wait", lambda: naive_wait(heat(conn), ref, "CREATE", POLL_INTERVAL))
    else:
        step("wait", lambda: provider.wait(ref, progress=events.append, timeout=900))
    nodes = step("nodes", lambda: provider.nodes(ref))
    if naive:
        def delete():
            heat(conn).stacks.delete(ref)
            naive_wait(heat(conn), ref, "DELETE", POLL_INTERVAL)
        step("delete", delete)
    else:
        step("delete", lambda: provider.delete(ref, timeout=900))
    total_calls = sum(s["calls"] for s in steps.values())
    total_wall = round(sum(s["wall_s"] for s in steps.values()), 2)
    return {"steps": steps, "total_calls": total_calls, "total_wall_s": total_wall, "nodes": len(nodes),
            "progress_reports": len(events)}


def main():
    from bayctl.cloud.connection import connect

    tier = None
    reuse = os.environ.get("BAYCTL_CLOUD_TIER_REUSE")
    t0 = time.monotonic()
    if reuse:
        with open(reuse) as f:
            auth = json.load(f)["auth"]
        tier_start = None
    else:
        from cloudtier import venv
        from cloudtier.tier import Tier

        venv.ensure_venv()
        tier = Tier(tempfile.mkdtemp(prefix="bayctl-cloud-bench-", dir="/var/tmp")).start()
        auth = tier.auth
        tier_start = round(time.monotonic() - t0, 2)
    try:
        results = {}
        for label, naive in (("bayctl", False), ("naive", True)):
            conn = connect(**auth, authenticate=False)
            counter = CallCounter(conn.session)
            mark = counter.mark()
            conn.session.get_token()
            auth_calls = counter.since(mark)["calls"]
            results[label] = run(conn, counter, naive)
            results[label]["auth_calls"] = auth_calls
            conn.close()
        b, n = results["bayctl"], results["naive"]
        doc = {
            "bench": "cloud",
            "slaves": SLAVES,
            "poll_interval_s": POLL_INTERVAL,
            "tier_start_s": tier_start,
            "tier_timings": tier.timings if tier else None,
            "bayctl": b,
            "naive": n,
            "ratios": {
                "calls_naive_over_bayctl": round(n["total_calls"] / max(1, b["total_calls"]), 2),
                "wait_calls_naive_over_bayctl": round(n["steps"]["wait"]["calls"] /
                                                      max(1, b["steps"]["wait"]["calls"]), 2),
                "wall_naive_over_bayctl": round(n["total_wall_s"] / max(0.01, b["total_wall_s"]), 2),
                "bayctl_wait_calls_per_minute": round(b["steps"]["wait"]["calls"] /
                                                      max(0.01, b["steps"]["wait"]["wall_s"] / 60), 1),
            },
        }
        print(json.dumps(doc, indent=2))
    finally:
        if tier is not None:
            tier.stop()


if __name__ == "__main__":
    main()

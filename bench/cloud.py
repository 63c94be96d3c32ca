#!/usr/bin/env python3
"""API calls and wall time of create + delete of a 3-slave bay against the local REAL tier.

Prints ONE JSON document. Side by side in the same run, the same bay created and deleted
through bayctl's heat provider with each waiter polling policy (bayctl.cloud.stacks):
- "adaptive": the waiter now (1 s after news, x1.5 per quiet poll up to 15 s; the stack
  itself only on a quiet poll while deleting, or at the cap);
- "fixed": the waiter before (every 2 s; the stack after 5 quiet polls);
- "naive": what many scripts do, a stack GET + nested resource list every 2 s.
Every call is counted through a hook on the keystoneauth session (auth requests included),
per step and per endpoint; the events answers are read to count events fetched more than once.
"remaining_calls" says why each call the adaptive run still makes is needed.

    python3 bench/cloud.py                        # starts the tier (1-3 min), runs, stops it
    python3 bench/cloud.py --poll adaptive fixed  # only these (default: adaptive fixed naive)
    BAYCTL_CLOUD_TIER_REUSE=/var/tmp/bayctl-cloud-dev/auth.json python3 bench/cloud.py
"""

import argparse
import collections
import json
import os
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)
from harness.cloudtier.calls import CallRecorder  # noqa: E402  (tests/ holds the call recorder)

SLAVES = 3
NAIVE_INTERVAL = 2.0
POLICIES = ("adaptive", "fixed", "naive")
BOOT_SECONDS = 60  # a small cloud image boots and starts its services in about a minute

# Why each call of the adaptive run is still made (keys as CallRecorder normalises them).
WHY = {
    "GET /v1/{project}/stacks": "create: is there a bay of this name already? (re-running create "
                                "resumes it instead of uploading the template again)",
    "POST /v1/{project}/stacks": "create: the stack itself (template, files, environment in one call)",
    "GET /v1/{project}/stacks/{name}/{id}/events": "wait/delete: one per poll, only events not seen "
                                                   "before (marker), all nested stacks at once; polls "
                                                   "are 2 s apart while events arrive, backing off to "
                                                   "15 s while quiet",
    "GET /v1/{project}/stacks/{name}/{id}": "nodes: the outputs (one GET); delete: the status after a "
                                            "quiet poll (Heat drops a deleted stack's last events, so "
                                            "DELETE_COMPLETE is only seen on the stack)",
    "DELETE /v1/{project}/stacks/{name}/{id}": "delete: the request itself",
}


class CallCounter(CallRecorder):
    """The calls of one session (tests/harness/cloudtier/calls.py), counted per step."""

    def mark(self):
        return len(self.calls)

    def since(self, mark):
        chunk = self.calls[mark:]
        by = collections.Counter(f"{m} {p}" for m, p, _, _ in chunk)
        ids = [i for *_, batch in chunk for i in batch or ()]
        return {"calls": len(chunk), "by_endpoint": dict(by.most_common()), "events_fetched": len(ids),
                "events_fetched_twice": len(ids) - len(set(ids)),
                "empty_event_polls": sum(1 for *_, batch in chunk if batch == [])}


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


class FixedPolling:
    """The former waiter (bayctl.cloud.stacks before its adaptive policy): every `interval` seconds;
    the stack after `stall` quiet polls."""

    name = "fixed"

    def __init__(self, interval=2.0, stall=5):
        self.interval, self.stall = interval, stall
        self.quiet = 0

    def after_poll(self, got_events):
        self.quiet = 0 if got_events else self.quiet + 1
        return self.interval

    def want_stack(self, got_events, action):
        if self.quiet >= self.stall:
            self.quiet = 0
            return True
        return False



def run(conn, counter, policy, boot_s, booter_conn):
    """create + wait + nodes + delete of one bay. boot_s None: the stand-ins complete at once;
    else the real wait conditions complete when the nodes "boot", boot_s after the create."""
    from harness.emulators.nodeboot import NodeBooter

    from bayctl.cloud.heat_client import heat
    from bayctl.cloud.stacks import AdaptivePolling, wait_for_stack
    from bayctl.providers import BayRequest, get_provider
    from bayctl.providers.heat import templates_dir

    envs = [os.path.join(templates_dir(), "environments", "standins.yaml")]
    if boot_s is not None:
        envs.append(os.path.join(templates_dir(), "environments", "standins-signalled.yaml"))
    steps = {}
    naive = policy == "naive"
    name = f"bcl-bench-{policy}" + ("" if boot_s is None else f"-boot{boot_s}")
    request = BayRequest(name=name, slaves=SLAVES, image="img", keypair="kp", master_flavor="m1",
                         slave_flavor="m1", external_network="public", timeout=900)

    def step(label, fn):
        mark, t0 = counter.mark(), time.monotonic()
        result = fn()
        steps[label] = {"wall_s": round(time.monotonic() - t0, 2), **counter.since(mark)}
        return result

    def polling():
        return AdaptivePolling() if policy == "adaptive" else FixedPolling()

    provider = step("provider", lambda: get_provider("heat", conn, environments=envs))
    ref = step("create", lambda: provider.create(request))
    booter = None
    if boot_s is not None:  # its own connection: its calls are the nodes', not bayctl's
        booter = NodeBooter(heat(booter_conn), ref)
        threading.Timer(boot_s, booter.start).start()
    events = []
    if naive:
        step("wait", lambda: naive_wait(heat(conn), ref, "CREATE", NAIVE_INTERVAL))
    else:  # what provider.wait(ref) does, with the policy chosen here
        step("wait", lambda: wait_for_stack(conn, ref, progress=events.append, timeout=900, what="bay",
                                            polling=polling()))
    nodes = step("nodes", lambda: provider.nodes(ref))
    if booter is not None:
        booter.stop()

    def delete():
        provider.delete(ref, wait=False)
        if naive:
            naive_wait(heat(conn), ref, "DELETE", NAIVE_INTERVAL)
        else:  # what provider.delete(ref) waits with
            wait_for_stack(conn, ref, action="DELETE", progress=events.append, timeout=900, what="bay",
                           polling=polling())
    step("delete", delete)
    total_calls = sum(s["calls"] for s in steps.values())
    total_wall = round(sum(s["wall_s"] for s in steps.values()), 2)
    return {"steps": steps, "total_calls": total_calls, "total_wall_s": total_wall, "nodes": len(nodes),
            "progress_reports": len(events),
            "progress_last": {"create": next((e.message for e in events if e.status.startswith("CREATE_C")),
                                             None), "delete": events[-1].message if events else None}}


def ratios(results, policies):
    """Each other policy over adaptive: >1 means adaptive makes fewer calls / is faster."""
    new, out = results.get("adaptive"), {}
    for other in (p for p in policies if p != "adaptive" and new):
        old = results[other]
        out[f"{other}_over_adaptive"] = {
            "calls": round(old["total_calls"] / max(1, new["total_calls"]), 2),
            **{f"{step}_calls": round(old["steps"][step]["calls"] / max(1, new["steps"][step]["calls"]), 2)
               for step in ("wait", "delete")},
            "wall": round(old["total_wall_s"] / max(0.01, new["total_wall_s"]), 2),
            "delete_wall": round(old["steps"]["delete"]["wall_s"] /
                                 max(0.01, new["steps"]["delete"]["wall_s"]), 2)}
    return out


def main():
    from bayctl.cloud.connection import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--poll", nargs="+", choices=POLICIES, default=list(POLICIES),
                        help="waiter policies to run, side by side (default: all)")
    parser.add_argument("--boot-seconds", type=int, default=BOOT_SECONDS,
                        help="second scenario: the nodes signal their wait conditions this long after "
                             "the create, as booting servers would; 0: skip it (default: %(default)s)")
    args = parser.parse_args()

    tier = None
    reuse = os.environ.get("BAYCTL_CLOUD_TIER_REUSE")
    t0 = time.monotonic()
    if reuse:
        with open(reuse) as f:
            auth = json.load(f)["auth"]
        tier_start = None
    else:
        from harness.cloudtier import venv
        from harness.cloudtier.tier import Tier

        venv.ensure_venv()
        tier = Tier(tempfile.mkdtemp(prefix="bayctl-cloud-bench-", dir="/var/tmp")).start()
        auth = tier.auth
        tier_start = round(time.monotonic() - t0, 2)
    try:
        booter_conn = connect(**auth)
        doc = {"bench": "cloud", "slaves": SLAVES, "tier_start_s": tier_start,
               "tier_timings": tier.timings if tier else None, "scenarios": {}, "ratios": {}}
        scenarios = {"instant": None}
        if args.boot_seconds > 0:
            scenarios[f"boot{args.boot_seconds}"] = args.boot_seconds
        for scenario, boot_s in scenarios.items():
            results = doc["scenarios"][scenario] = {}
            for policy in args.poll:
                conn = connect(**auth, authenticate=False)
                counter = CallCounter(conn.session)
                mark = counter.mark()
                conn.session.get_token()
                auth_calls = counter.since(mark)["calls"]
                results[policy] = run(conn, counter, policy, boot_s, booter_conn)
                results[policy]["auth_calls"] = auth_calls
                conn.close()
            doc["ratios"][scenario] = ratios(results, args.poll)
        booter_conn.close()
        made = collections.Counter()  # every call the adaptive waiter's runs still make, and why
        for results in doc["scenarios"].values():
            for step in results.get("adaptive", {}).get("steps", {}).values():
                made.update(step["by_endpoint"])
        doc["remaining_calls"] = {call: {"count": n, "why": WHY.get(call, "not explained: a defect")}
                                  for call, n in made.most_common()}
        print(json.dumps(doc, indent=2))
    finally:
        if tier is not None:
            tier.stop()


if __name__ == "__main__":
    main()

"""Wait for a Heat stack, reporting progress from its events, with a deadline.

One events call per poll (nested_depth + marker: only new events, all nested stacks at
once; the stack is addressed as "name/id" so Heat never has to redirect). The root stack's
own event ends the wait; the stack itself is fetched only if events stall.
"""

import logging
import time

from bayctl.cloud.diagnosis import MAX_DEPTH, raise_stack_failed
from bayctl.cloud.heat_client import heat
from bayctl.errors import CloudError
from bayctl.providers.base import BayStatus, Progress

LOG = logging.getLogger(__name__)

DEFAULT_INTERVAL = 2.0  # seconds between polls: a bay takes minutes, a 2 s lag costs nothing
STALL_POLLS = 5  # polls without a new event before the stack itself is fetched


def _link(event, rel):
    for link in getattr(event, "links", []) or []:
        if link.get("rel") == rel:
            return link.get("href", "").rstrip("/")
    return ""


def split_ref(ref):
    """'name/id' -> (name, id)."""
    name, _, stack_id = ref.partition("/")
    if not stack_id:
        raise CloudError(f"stack reference {ref!r} is not NAME/ID")
    return name, stack_id


def wait_for_stack(conn, ref, action="CREATE", progress=None, timeout=None, interval=DEFAULT_INTERVAL,
                   what="stack", provider="heat"):
    """Block until stack `ref` ("name/id") finishes `action`; return BayStatus.

    Raises StackFailed (deepest failed resource) or CloudError on timeout."""
    from heatclient import exc as heat_exc

    hc = heat(conn)
    name, stack_id = split_ref(ref)
    deadline = None if timeout is None else time.monotonic() + timeout
    marker = None
    latest = {}  # (owning stack id, resource name) -> last status seen
    prefixes = {name: ""}  # stack name -> path of the resource that owns it ("" for the root)

    def prefix_of(stack_name):
        # Heat names a nested stack "<parent stack>-<resource>-<12-char id>" (physical_resource_name),
        # so the owning resource's path follows from the names alone, even before its own event.
        if stack_name not in prefixes:
            parent = max((p for p in prefixes if stack_name.startswith(p + "-")), key=len, default=None)
            if parent is None:
                return stack_name
            parts = stack_name[len(parent) + 1:].split("-")
            if len(parts) % 2 == 0 and all(len(p) == 12 for p in parts[1::2]):
                resources = parts[0::2]  # several levels below a known stack: "<res>-<id>" pairs
            else:
                resources = ["-".join(parts[:-1])]
            prefixes[stack_name] = ".".join(x for x in (prefixes[parent], *resources) if x)
        return prefixes[stack_name]

    quiet_polls = 0
    final = None
    while final is None:
        try:
            # Only this action's events: a delete does not re-read the whole create history.
            events = hc.events.list(ref, nested_depth=MAX_DEPTH, marker=marker, sort_dir="asc",
                                    filters={"resource_action": action})
        except heat_exc.HTTPNotFound:
            if action == "DELETE":
                return BayStatus(name=name, id=stack_id, status="DELETE_COMPLETE", provider=provider)
            raise CloudError(f"{what} {name} disappeared while waiting for {action}") from None
        for event in events:
            marker = event.id
            owner_name, owner = _link(event, "stack").split("/")[-2:]
            if event.physical_resource_id == owner or event.resource_name == name and \
                    event.physical_resource_id == stack_id:
                # A stack's own event (root or nested): the nested one duplicates its parent resource.
                if event.physical_resource_id == stack_id and event.resource_status in (
                        f"{action}_COMPLETE", f"{action}_FAILED"):
                    final = event.resource_status
                    reason = event.resource_status_reason or ""
                continue
            latest[(owner, event.resource_name)] = event.resource_status
            if progress is not None:
                done = sum(1 for s in latest.values() if s == f"{action}_COMPLETE")
                resource_path = ".".join(x for x in (prefix_of(owner_name), event.resource_name) if x)
                message = f"{resource_path} {event.resource_status}"
                if event.resource_status_reason and event.resource_status.endswith("FAILED"):
                    message += f": {event.resource_status_reason}"
                progress(Progress(message=message, done=done, total=len(latest),
                                  status=f"{action}_IN_PROGRESS"))
        if final is not None:
            break
        quiet_polls = 0 if events else quiet_polls + 1
        if quiet_polls >= STALL_POLLS:
            # Events can be purged or missed; the stack's status is the truth.
            quiet_polls = 0
            try:
                stack = hc.stacks.get(ref)
            except heat_exc.HTTPNotFound:
                if action == "DELETE":
                    return BayStatus(name=name, id=stack_id, status="DELETE_COMPLETE", provider=provider)
                raise
            if stack.stack_status in (f"{action}_COMPLETE", f"{action}_FAILED"):
                final, reason = stack.stack_status, stack.stack_status_reason or ""
                break
        if deadline is not None and time.monotonic() >= deadline:
            done = sum(1 for s in latest.values() if s == f"{action}_COMPLETE")
            raise CloudError(f"{what} {name}: {action} not finished after {timeout:.0f}s "
                             f"({done}/{len(latest)} resources done); it is left as it is")
        time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))

    if progress is not None:
        done = sum(1 for s in latest.values() if s == f"{action}_COMPLETE")
        progress(Progress(message=f"{name} {final}", done=done, total=len(latest), status=final))
    if final.endswith("FAILED"):
        raise_stack_failed(conn, ref, what=what)
    return BayStatus(name=name, id=stack_id, status=final, provider=provider, reason=reason)

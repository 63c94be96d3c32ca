"""Wait for a Heat stack, reporting progress from its events, with a deadline.

Each poll is one events call (nested_depth + marker + sort_dir=asc: only events not seen
before, all nested stacks at once; the stack is addressed as "name/id" so Heat never has to
redirect). How often to poll and when to fetch the stack itself is a polling policy:

- AdaptivePolling (the default): poll again after `floor` seconds while events arrive,
  x1.5 per quiet poll up to `cap` (never past the deadline), back to `floor` on the next
  event. The root stack's own event ends a create. The stack itself is fetched only when
  events cannot tell: on the first quiet poll of a delete's quiet spell (Heat removes a
  deleted stack's last events with it, so its DELETE_COMPLETE event is never listed;
  measured on heat 27), and as a safety net when the backoff reaches its cap, then once
  a minute while it stays there (events can be purged).
  (bench/cloud.py keeps the former fixed-interval waiter for its side-by-side count.)

Like python-heatclient's event_utils.poll_for_events, plus a backoff such as the one
openstacksdk's wait_for_status offers.
"""

import logging
import time

from bayctl.cloud.diagnosis import MAX_DEPTH, raise_stack_failed
from bayctl.cloud.heat_client import heat
from bayctl.errors import CloudError
from bayctl.model import BayStatus, Progress

LOG = logging.getLogger(__name__)

# Seconds after news. Not less: while a bay builds, events stream in; polling at 1 s fetched the
# same events in 25 calls instead of 14 (bench/cloud.py), and a 2 s lag costs a minutes-long build nothing.
DEFAULT_INTERVAL = 2.0
BACKOFF = 1.5  # growth of the delay per quiet poll
MAX_INTERVAL = 15.0  # a quiet stack (a node booting) is looked at at least this often


class AdaptivePolling:
    """floor -> x factor per quiet poll -> cap; back to floor when events arrive."""

    name = "adaptive"
    CAP_POLLS_PER_STACK = 4  # at the cap, the stack once a minute (15 s x 4)

    def __init__(self, floor=DEFAULT_INTERVAL, factor=BACKOFF, cap=MAX_INTERVAL):
        self.floor, self.factor, self.cap = floor, factor, max(cap, floor)
        self.delay = floor
        self._quiet = 0  # quiet polls in this quiet spell
        self._at_cap = 0  # of which made with the delay at the cap

    def after_poll(self, got_events):
        """Record one events poll; return the delay before the next one."""
        if got_events:
            self.delay, self._quiet, self._at_cap = self.floor, 0, 0
        else:
            self._quiet += 1
            if self.delay >= self.cap:
                self._at_cap += 1
            self.delay = min(self.cap, self.delay * self.factor)
        return self.delay

    def want_stack(self, got_events, action):
        """Should the stack itself be fetched after this poll?"""
        if got_events:
            return False
        if action == "DELETE" and self._quiet == 1:
            # Heat drops a deleted stack's last events with it (its DELETE_COMPLETE is never listed):
            # the first quiet poll of a delete may mean "gone". Once per quiet spell.
            return True
        # A long quiet spell: events may have been purged, the stack's status is the truth.
        return self._at_cap % self.CAP_POLLS_PER_STACK == 1


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


class ResourcePaths:
    """Stack name -> dotted path of the resource that owns it ("" for the root stack), e.g.
    "slaves.0" for the stack of the slaves group's member 0, for progress lines people read."""

    def __init__(self, root_name):
        self._prefixes = {root_name: ""}

    def of_stack(self, stack_name):
        # Heat names a nested stack "<parent stack>-<resource>-<12-char id>" (physical_resource_name),
        # so the owning resource's path follows from the names alone, even before its own event.
        if stack_name not in self._prefixes:
            parent = max((p for p in self._prefixes if stack_name.startswith(p + "-")), key=len, default=None)
            if parent is None:
                return stack_name
            parts = stack_name[len(parent) + 1:].split("-")
            if len(parts) % 2 == 0 and all(len(p) == 12 for p in parts[1::2]):
                resources = parts[0::2]  # several levels below a known stack: "<res>-<id>" pairs
            else:
                resources = ["-".join(parts[:-1])]
            self._prefixes[stack_name] = ".".join(x for x in (self._prefixes[parent], *resources) if x)
        return self._prefixes[stack_name]

    def of_resource(self, stack_name, resource_name):
        return ".".join(x for x in (self.of_stack(stack_name), resource_name) if x)


class EventFold:
    """A stack's events, folded in order: each resource's last status, and the root stack's
    outcome (`final`, `reason`) once its own event for the action arrives."""

    def __init__(self, name, stack_id, action):
        self.name, self.stack_id, self.action = name, stack_id, action
        self.paths = ResourcePaths(name)
        self.latest = {}  # (owning stack id, resource name) -> last status seen
        self.final, self.reason = None, ""

    @property
    def done(self):
        return sum(1 for s in self.latest.values() if s == f"{self.action}_COMPLETE")

    def add(self, event):
        """Fold one event in; the Progress to report for it, or None (a stack's own event)."""
        owner_name, owner = _link(event, "stack").split("/")[-2:]
        if event.physical_resource_id == owner or event.resource_name == self.name and \
                event.physical_resource_id == self.stack_id:
            # A stack's own event (root or nested): the nested one duplicates its parent resource.
            if event.physical_resource_id == self.stack_id and event.resource_status in (
                    f"{self.action}_COMPLETE", f"{self.action}_FAILED"):
                self.final = event.resource_status
                self.reason = event.resource_status_reason or ""
            return None
        self.latest[(owner, event.resource_name)] = event.resource_status
        message = f"{self.paths.of_resource(owner_name, event.resource_name)} {event.resource_status}"
        if event.resource_status_reason and event.resource_status.endswith("FAILED"):
            message += f": {event.resource_status_reason}"
        return Progress(message=message, done=self.done, total=len(self.latest),
                        status=f"{self.action}_IN_PROGRESS")

    def settle(self, status, reason):
        """The outcome read from the stack itself (its events could not tell)."""
        self.final, self.reason = status, reason or ""


def wait_for_stack(conn, ref, action="CREATE", progress=None, timeout=None, interval=DEFAULT_INTERVAL,
                   what="stack", provider="heat", polling=None):
    """Block until stack `ref` ("name/id") finishes `action`; return BayStatus.

    `interval` is the delay after news (AdaptivePolling's floor); `polling` replaces the policy.
    Raises StackFailed (deepest failed resource) or CloudError on timeout."""
    from heatclient import exc as heat_exc

    hc = heat(conn)
    name, stack_id = split_ref(ref)
    deadline = None if timeout is None else time.monotonic() + timeout
    marker = None
    fold = EventFold(name, stack_id, action)
    gone = BayStatus(name=name, id=stack_id, status="DELETE_COMPLETE", provider=provider)
    polling = polling or AdaptivePolling(floor=interval)
    while fold.final is None:
        try:
            # Only this action's events: a delete does not re-read the whole create history.
            events = hc.events.list(ref, nested_depth=MAX_DEPTH, marker=marker, sort_dir="asc",
                                    filters={"resource_action": action})
        except heat_exc.HTTPNotFound:
            if action == "DELETE":
                return gone
            raise CloudError(f"{what} {name} disappeared while waiting for {action}") from None
        for event in events:
            marker = event.id
            report = fold.add(event)
            if report is not None and progress is not None:
                progress(report)
        if fold.final is not None:
            break
        delay = polling.after_poll(bool(events))
        if polling.want_stack(bool(events), action):
            try:
                stack = hc.stacks.get(ref, resolve_outputs=False)  # the status only: outputs cost Heat work
            except heat_exc.HTTPNotFound:
                if action == "DELETE":
                    return gone
                raise
            if stack.stack_status in (f"{action}_COMPLETE", f"{action}_FAILED"):
                fold.settle(stack.stack_status, stack.stack_status_reason)
                break
        if deadline is not None and time.monotonic() >= deadline:
            raise CloudError(f"{what} {name}: {action} not finished after {timeout:.0f}s "
                             f"({fold.done}/{len(fold.latest)} resources done); it is left as it is")
        # Never sleep past the deadline: the last poll happens at it.
        time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))

    final = fold.final
    if progress is not None:
        progress(Progress(message=f"{name} {final}", done=fold.done, total=len(fold.latest), status=final))
    if final.endswith("FAILED"):
        raise_stack_failed(conn, ref, what=what)
    return BayStatus(name=name, id=stack_id, status=final, provider=provider, reason=fold.reason)

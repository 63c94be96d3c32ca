"""Why did a stack fail? Walk its nested resources down to the deepest failed ones.

The same idea as python-heatclient's `openstack stack failures list`: a failed
ResourceGroup or nested template only says "a child failed"; the useful line is the leaf
resource that failed first, its type and Heat's reason, plus Nova's fault for a server.
Which leaf Heat reports first can vary between runs of the same stack, so every deepest
failure is returned, sorted by path.
"""

import dataclasses
import logging
from typing import Optional

from bayctl.cloud.heat_client import heat
from bayctl.errors import StackFailed

LOG = logging.getLogger(__name__)
MAX_DEPTH = 8  # deeper than any bay template nests (stack -> group -> member -> standin)


@dataclasses.dataclass
class Failure:
    path: str  # e.g. "slaves.1.server.boot"
    resource_type: str
    status: str
    reason: str
    physical_id: str = ""
    fault: str = ""  # Nova's fault message for a failed server, when available
    fault_code: Optional[int] = None  # its code (500 for NoValidHost, ...)
    server_gone: bool = False  # Nova no longer knows the server (404): no fault to show

    def line(self):
        text = f"{self.path} ({self.resource_type}) {self.status}: {self.reason}"
        if self.fault:
            text += f" [nova fault {self.fault_code}: {self.fault}]" if self.fault_code is not None \
                else f" [nova fault: {self.fault}]"
        elif self.server_gone:
            text += f" [server {self.physical_id} is gone from Nova: no fault to show]"
        return text


def _link(resource, rel):
    for link in getattr(resource, "links", []) or []:
        if link.get("rel") == rel:
            return link.get("href", "")
    return ""


def _stack_id_of_link(href):
    # .../stacks/<name>/<id>
    return href.rstrip("/").rsplit("/", 1)[-1] if href else ""


def stack_failures(conn, stack_ref):
    """The deepest failed resources of `stack_ref` (name or id), as Failure records."""
    hc = heat(conn)
    stack = hc.stacks.get(stack_ref)
    resources = hc.resources.list(stack.id, nested_depth=MAX_DEPTH)
    by_stack = {}
    # A resource whose physical id is a stack id is the parent of that nested stack.
    parent_of = {}
    for res in resources:
        owner = _stack_id_of_link(_link(res, "stack"))
        by_stack.setdefault(owner, []).append(res)
        if _link(res, "nested"):
            parent_of[_stack_id_of_link(_link(res, "nested"))] = (owner, res)

    def path(owner, res):
        parts = [res.resource_name]
        while owner in parent_of:
            owner, parent = parent_of[owner]
            parts.append(parent.resource_name)
        return ".".join(reversed(parts))

    failed = [(owner, r) for owner, rs in by_stack.items() for r in rs
              if r.resource_status.endswith("FAILED")]
    failed_nested = {_stack_id_of_link(_link(r, "nested")) for _, r in failed if _link(r, "nested")}
    leaves = []
    for owner, res in failed:
        nested = _stack_id_of_link(_link(res, "nested"))
        # A failed parent whose nested stack has failed children is not the cause.
        if nested and nested in failed_nested and any(
                r.resource_status.endswith("FAILED") for r in by_stack.get(nested, [])):
            continue
        leaves.append(Failure(path=path(owner, res), resource_type=res.resource_type,
                              status=res.resource_status, reason=res.resource_status_reason or "",
                              physical_id=res.physical_resource_id or ""))
    for leaf in leaves:
        if leaf.resource_type == "OS::Nova::Server" and leaf.physical_id:
            _add_server_fault(conn, leaf)
    if not leaves and stack.stack_status.endswith("FAILED"):
        # No failed resource (a timeout, a validation error): the stack's own reason is all there is.
        leaves.append(Failure(path=stack.stack_name, resource_type="OS::Heat::Stack",
                              status=stack.stack_status, reason=stack.stack_status_reason or ""))
    return sorted(leaves, key=lambda f: f.path)


def _add_server_fault(conn, failure):
    """Nova's own account of a failed server (the fault Heat's reason may have cut short)."""
    from openstack import exceptions as sdk_exc

    try:
        server = conn.compute.get_server(failure.physical_id)
    except sdk_exc.NotFoundException:  # deleted meanwhile: Heat's reason stands alone, and says so
        failure.server_gone = True
        return
    except Exception as e:  # no compute endpoint, Nova down: the diagnosis must not fail for it
        LOG.debug("no server fault for %s: %s", failure.physical_id, type(e).__name__)
        return
    fault = getattr(server, "fault", None) or {}
    failure.fault = " ".join((fault.get("message") or "").split())
    code = fault.get("code")
    failure.fault_code = int(code) if isinstance(code, (int, str)) and str(code).isdigit() else None


def raise_stack_failed(conn, stack_ref, what="stack"):
    """Raise StackFailed naming the deepest failure (all of them in the message)."""
    failures = stack_failures(conn, stack_ref)
    first = failures[0] if failures else None
    if first is None:
        raise StackFailed(f"{what} {stack_ref} failed (Heat reports no failed resource)")
    others = f" (+{len(failures) - 1} more: " + "; ".join(f.line() for f in failures[1:]) + ")" \
        if len(failures) > 1 else ""
    raise StackFailed(f"{what} {stack_ref} failed at {first.line()}{others}",
                      resource=first.path, resource_type=first.resource_type, reason=first.reason)

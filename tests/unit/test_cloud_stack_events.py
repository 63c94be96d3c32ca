"""The stack waiter's parts (bayctl.cloud.stacks): naming a nested stack's resources by their
path from the root, and folding events into progress and the root's outcome. Event records have
the fields and links heatclient gives (as the cloud tier's real Heat returns them)."""

from types import SimpleNamespace

from bayctl.cloud.stacks import EventFold, ResourcePaths

ROOT, ROOT_ID = "bay", "r00t"
SLAVES = "bay-slaves-abcdefabcdef"  # Heat: "<parent>-<resource>-<12-char id>"
SLAVE0 = f"{SLAVES}-0-123456789012"


def event(stack, stack_id, resource, physical, status, reason=""):
    return SimpleNamespace(resource_name=resource, physical_resource_id=physical, resource_status=status,
                           resource_status_reason=reason,
                           links=[{"rel": "stack", "href": f"http://heat/v1/t/stacks/{stack}/{stack_id}"}])


def test_nested_stacks_are_named_by_the_resources_that_own_them():
    paths = ResourcePaths(ROOT)
    assert paths.of_stack(ROOT) == ""
    assert paths.of_resource(SLAVE0, "server") == "slaves.0.server"  # two levels below, before its parent
    assert paths.of_stack(SLAVES) == "slaves"
    assert paths.of_stack("other-stack") == "other-stack"  # not below the root: its own name


def test_a_fold_reports_resources_and_ends_on_the_roots_own_event():
    fold = EventFold(ROOT, ROOT_ID, "CREATE")
    first = fold.add(event(SLAVE0, "s0id", "server", "vm-1", "CREATE_IN_PROGRESS"))
    assert (first.message, first.done, first.total) == ("slaves.0.server CREATE_IN_PROGRESS", 0, 1)
    failed = fold.add(event(SLAVE0, "s0id", "port", "p-1", "CREATE_FAILED", "quota"))
    assert failed.message == "slaves.0.port CREATE_FAILED: quota"
    done = fold.add(event(SLAVE0, "s0id", "server", "vm-1", "CREATE_COMPLETE"))
    assert (done.done, done.total) == (1, 2)
    # A nested stack's own event duplicates its parent resource: not counted.
    assert fold.add(event(SLAVE0, "s0id", "0", "s0id", "CREATE_COMPLETE")) is None
    assert fold.final is None
    assert fold.add(event(ROOT, ROOT_ID, ROOT, ROOT_ID, "CREATE_FAILED", "Resource CREATE failed")) is None
    assert (fold.final, fold.reason) == ("CREATE_FAILED", "Resource CREATE failed")


def test_another_actions_outcome_does_not_end_the_fold():
    fold = EventFold(ROOT, ROOT_ID, "DELETE")
    assert fold.add(event(ROOT, ROOT_ID, ROOT, ROOT_ID, "DELETE_IN_PROGRESS")) is None
    assert fold.final is None
    fold.settle("DELETE_COMPLETE", None)  # read from the stack when its events could not tell
    assert (fold.final, fold.reason) == ("DELETE_COMPLETE", "")

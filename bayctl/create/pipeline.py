"""`bayctl create mesosbay`: validate everything, then run the steps in order.

    STEPS = ensure-image, ensure-template, create-stack, wait, collect-nodes,
            wait-for-agents, seed-policy, verify

Like kind's create: validation (spec, provider, cloud connection, name, what exists) comes
before any side effect; then each step runs over one CreateContext and is recorded in the
bay's state as it completes. Every step is idempotent, so re-running create on a bay that
half exists resumes it. On failure:

- a bay this run started from nothing is removed again (so nothing is left behind), unless
  `retain` is set, which keeps it for debugging;
- a bay that existed before this run is never removed by create;
- either way the error names the step that failed and says how to resume or clean up.

Ctrl-C (KeyboardInterrupt) removes nothing: the state on disk is whatever the last finished
action wrote, and `create` resumes it, `delete` removes it.
"""

import dataclasses
import os
import subprocess
from typing import Optional

from bayctl.create.context import CreateContext, CreateOptions, Status, public_key_of, request_from_spec
from bayctl.create.keypair import STATE_KEY as KEYPAIR_STATE_KEY
from bayctl.create.keypair import delete_keypair, ensure_keypair, keypair_name
from bayctl.create.state import (
    CREATING,
    DELETING,
    FAILED,
    READY,
    BayState,
    DamagedState,
    bay_key_path,
    bay_lock,
    remove_bay_dir,
    state_root,
)
from bayctl.create.steps.collect_nodes import CollectNodes
from bayctl.create.steps.create_stack import CreateStack
from bayctl.create.steps.distribution import SetupDistribution
from bayctl.create.steps.ensure_image import EnsureImage
from bayctl.create.steps.ensure_template import EnsureTemplate
from bayctl.create.steps.seed_policy import SeedPolicy
from bayctl.create.steps.verify import Verify
from bayctl.create.steps.wait import Wait
from bayctl.create.steps.wait_for_agents import WaitForAgents
from bayctl.errors import BayctlError, CloudError, SpecError
from bayctl.providers import WITHOUT_CLOUD, get_provider, provider_info, providers_without_cloud
from bayctl.spec import BaySpec, check_local_size

STEPS = (
    EnsureImage(),
    EnsureTemplate(),
    CreateStack(),
    Wait(),
    CollectNodes(),
    WaitForAgents(),
    SetupDistribution(),
    SeedPolicy(),
    Verify(),
)

# Fields that decide what a bay IS; a re-run with other values would silently build another bay.
FIXED_FIELDS = ("provider", "slaves", "image", "flavor", "master_flavor", "keypair", "external_network")


class CreateFailed(BayctlError):
    """A create step failed. `step` names it; `cause` is the underlying typed error."""

    def __init__(self, message, *, step, cause):
        self.step, self.cause = step, cause
        super().__init__(message)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during create; the message says how to resume or remove the bay."""


def cloud_configured(spec: BaySpec) -> bool:
    """A clouds.yaml entry in the spec, the command's --os-cloud/--os-auth-url, or OS_CLOUD/OS_AUTH_URL."""
    from bayctl.cloud.connection import has_cloud_config

    return bool(spec.cloud) or has_cloud_config()


def resolve_provider_name(spec: BaySpec, saved: Optional[BayState]) -> str:
    """The saved bay's provider, else the spec's; "auto" without a cloud is the one that needs none."""
    if saved is not None:
        return saved.provider
    if spec.provider != "auto":
        return spec.provider
    return "auto" if cloud_configured(spec) else WITHOUT_CLOUD


def connect(spec: BaySpec):
    """The openstacksdk connection for a cloud bay (CloudError if none can be made)."""
    from bayctl.cloud.connection import connect as cloud_connect

    return cloud_connect(cloud=spec.cloud)


def open_provider(name: str, spec: Optional[BaySpec] = None, **options):
    """(provider, conn) for a provider name; the cloud connection only where needed ("auto"
    without a cloud configured is the provider that needs none).

    `options` go to the provider's constructor (e.g. heat's `environments`)."""
    spec = spec if spec is not None else BaySpec(name="x")
    if name == "auto":
        # Magnum's answer (Mesos or not) depends on the bay's image: ask with this bay.
        options = dict(options, request=request_from_spec(spec))
    conn = connect(spec) if name == "auto" or provider_info(name).needs_cloud else None
    return get_provider(name, conn, state_root=state_root(), **options), conn


def create_bay(spec: BaySpec, *, retain: bool = False, verify: bool = False,
               status: Optional[Status] = None, provider_options: Optional[dict] = None) -> BayState:
    """Create (or resume) the bay `spec` describes; returns its state once READY.

    `provider_options` are passed to the provider (e.g. heat's `environments`, which map the
    templates' Bay::* types: Nova/Neutron on a cloud, stand-ins on a test tier)."""
    status = status or Status()
    options = CreateOptions(retain=retain, verify=verify)
    with bay_lock(spec.name):
        saved = BayState.load(spec.name)
        try:
            spec = _validated(spec, saved)
            provider, conn = open_provider(resolve_provider_name(spec, saved), spec,
                                           **(provider_options or {}))
            spec = spec.with_provider(provider.name)
            check_local_size(spec)  # `auto` may have become local just now
            provider.check(spec.name)
            if spec.ssh_key:
                public_key_of(spec.ssh_key)  # a key that cannot be read stops create here, not half-way
        except BaseException:
            if saved is None:
                remove_bay_dir(spec.name)  # only the lock file was made
            raise
        state = saved or BayState(name=spec.name, provider=provider.name, spec=spec.to_dict())
        fresh = saved is None
        # A new policy on a resumed bay is fine (it is seeded); what the bay is made of is not.
        state.spec, state.status, state.failed_step, state.reason = spec.to_dict(), CREATING, None, None
        # The login, fixed once for every step and every later command (bayctl.create.state).
        state.ssh_user = spec.ssh_user or provider.info.default_ssh_user
        state.ssh_key = spec.ssh_key or bay_key_path(state.directory)
        state.save()
        ctx = CreateContext(spec=spec, provider=provider, state=state, status=status, options=options,
                            conn=conn)
        makes_keypair = provider.info.needs_cloud and not spec.keypair  # uploads the bay's own key
        if not spec.ssh_key and (provider.info.installs_login_key or makes_keypair):
            _ensure_bay_key(state.directory)
        if makes_keypair:
            try:
                ctx.spec = _with_bay_keypair(ctx)
            except BaseException:
                if fresh:
                    remove_bay_dir(spec.name)  # nothing was made in the cloud
                raise
        _run_steps(ctx, fresh)
        state.status = READY
        state.save()
        return state


def _with_bay_keypair(ctx: CreateContext) -> BaySpec:
    """The spec with the keypair bayctl made for this bay (uploaded now, deleted with the bay)."""
    name = keypair_name(ctx.spec.name)
    try:
        ensure_keypair(ctx.conn, name, public_key_of(ctx.login.key))
    except BayctlError:
        raise
    except Exception as err:  # openstacksdk's errors: one line, the cloud's words
        raise CloudError(f"keypair {name}: {err}") from None
    ctx.state.extra[KEYPAIR_STATE_KEY] = name
    ctx.save()
    return dataclasses.replace(ctx.spec, keypair=name)


def _validated(spec: BaySpec, saved: Optional[BayState]) -> BaySpec:
    if saved is None:
        return spec
    if saved.status == DELETING:
        raise SpecError(f"bay {spec.name} is being deleted: finish with `bayctl delete bay {spec.name}`",
                        field="NAME")
    before = BaySpec.from_dict(saved.spec)
    for key in FIXED_FIELDS:
        now, was = getattr(spec, key), getattr(before, key)
        if key == "provider" and now == "auto":
            continue
        if now != was:
            raise SpecError(f"bay {spec.name} exists with {key} {was!r} (asked: {now!r}); delete it first "
                            f"to change that", field=key)
    return spec


def _run_steps(ctx: CreateContext, fresh: bool) -> None:
    current = None
    try:
        for step in STEPS:
            current = step
            reason = step.skip_reason(ctx)
            if reason:
                ctx.state.steps[step.name] = "skipped"
                continue
            ctx.status.start(step.title)
            try:
                step.run(ctx)
            except Exception as err:  # every failure is reported as the step's, never as a traceback
                _fail(ctx, step, err, fresh)
            ctx.state.steps[step.name] = "done"
            ctx.save()
            ctx.status.end("done")
    except KeyboardInterrupt:
        # Wherever it struck (in a step or between two), the record says so; nothing is undone.
        ctx.state.status, ctx.state.reason = FAILED, "interrupted"
        ctx.state.failed_step = current.name if current else None
        ctx.save()
        name = ctx.spec.name
        raise Interrupted(f"bay {name} is half made: `bayctl create mesosbay {name}` resumes it, "
                          f"`bayctl delete bay {name}` removes it") from None


def _fail(ctx: CreateContext, step, err: Exception, fresh: bool) -> None:
    name = ctx.spec.name
    reason = str(err) if isinstance(err, BayctlError) else f"{type(err).__name__}: {err}"
    ctx.state.status, ctx.state.failed_step, ctx.state.reason = FAILED, step.name, reason
    ctx.save()
    ctx.status.end("failed")
    if ctx.options.retain or not fresh:
        kept = "kept for debugging" if ctx.options.retain else "kept (it existed before this run)"
        raise CreateFailed(f"step {step.name} failed: {reason} -- bay {name} {kept}: `bayctl create mesosbay "
                           f"{name}` resumes it, `bayctl delete bay {name}` removes it",
                           step=step.name, cause=err) from err
    try:
        _delete(ctx.state, ctx.provider, ctx.status, ctx.conn)
        cleanup = f"removed what it had made (--retain keeps a failed bay); nothing of bay {name} is left"
    except Exception as cleanup_err:  # the original failure stays the headline
        cleanup = f"cleanup failed too ({cleanup_err}): run `bayctl delete bay {name}`"
    raise CreateFailed(f"step {step.name} failed: {reason} -- {cleanup}", step=step.name, cause=err) from err


def delete_bay(name: str, *, status: Optional[Status] = None,
               provider_options: Optional[dict] = None) -> bool:
    """Remove bay `name` and everything bayctl made for it. False if there was no such bay."""
    status = status or Status()
    with bay_lock(name):
        try:
            state = BayState.load(name)
        except DamagedState as err:
            _delete_damaged(name, err, status)
            return True
        if state is None:
            # Nothing recorded; a bay interrupted before its first save may still have objects
            # that its provider finds by name.
            found = _remove_leftovers(name)
            remove_bay_dir(name)
            return found
        provider, conn = open_provider(state.provider, BaySpec.from_dict(state.spec),
                                       **(provider_options or {}))
        _delete(state, provider, status, conn)
        return True


def _delete_damaged(name: str, err: DamagedState, status: Status) -> None:
    """Remove a bay whose bay.json cannot be read: what a bay on this machine leaves is found by
    name (a local bay's namespaces, links, pins, sockets), then the state dir goes. A cloud bay's
    stack cannot be found without its record: the message says so."""
    status.start(f"Deleting bay {name} ({err})")
    local = _remove_leftovers(name)
    remove_bay_dir(name)
    status.end("done" if local else "state removed; a cloud stack of this bay, if any, is not known here "
               f"(look for `{name}` in `openstack stack list`)")


def _delete(state: BayState, provider, status: Status, conn=None) -> None:
    state.status = DELETING
    state.save()
    status.start(f"Deleting bay {state.name}")
    ref = provider.ref_of(state.name, state.ref)
    if ref is not None:
        provider.delete(ref, wait=True, progress=lambda event: status.update(event.message, event.done,
                                                                              event.total))
    if state.extra.get(KEYPAIR_STATE_KEY) and conn is not None:
        delete_keypair(conn, state.extra[KEYPAIR_STATE_KEY])  # only the keypair bayctl made
    remove_bay_dir(state.name)
    status.end("done")


def _remove_leftovers(name: str) -> bool:
    """Ask every provider that builds on this machine to remove what a bay `name` left there."""
    providers = providers_without_cloud(state_root=state_root())
    return any([provider.remove_leftovers(name) for provider in providers])  # each of them, not the first


def _ensure_bay_key(bay_dir: str) -> None:
    path = bay_key_path(bay_dir)
    if os.path.exists(path):
        return
    done = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bayctl", "-f", path],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise CloudError(f"ssh-keygen: {done.stderr.strip()}")

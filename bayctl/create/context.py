"""What the create steps share: the spec, the provider, the saved state, and progress.

Modelled on kind's ActionContext: a step gets exactly this and nothing else, so the list
of steps in pipeline.py reads as the description of what `create` does.
"""

import dataclasses
import sys
import time
from typing import Callable, Optional

from bayctl.create.state import BayState, bay_key_path
from bayctl.model import BayRequest, Login
from bayctl.providers.base import Provider
from bayctl.spec import BaySpec

__all__ = ["CreateContext", "CreateOptions", "Status", "bay_key_path", "public_key_of", "request_from_spec"]


class Status:
    """Progress of the running step, for people: one line per change, never more than
    one line a second for the same step unless the message changes."""

    def __init__(self, write: Optional[Callable[[str], None]] = None):
        self._write = write
        self._step = None
        self._last = ("", 0.0)

    @classmethod
    def to_stderr(cls) -> "Status":
        return cls(lambda line: print(line, file=sys.stderr, flush=True))

    def start(self, title: str) -> None:
        self._step = title
        self._emit(f" * {title} ...")

    def update(self, message: str, done: Optional[int] = None, total: Optional[int] = None) -> None:
        counter = f" [{done}/{total}]" if done is not None and total else ""
        line = f"   {self._step}{counter}: {message}"
        now = time.monotonic()
        if line == self._last[0] and now - self._last[1] < 5:
            return
        self._last = (line, now)
        self._emit(line)

    def end(self, outcome: str) -> None:
        self._emit(f" {'✓' if outcome == 'done' else '-'} {self._step}: {outcome}")

    def _emit(self, line: str) -> None:
        if self._write is not None:
            self._write(line)


@dataclasses.dataclass
class CreateOptions:
    retain: bool = False  # keep a failed bay for debugging instead of removing it
    verify: bool = False  # run the verification step at the end


@dataclasses.dataclass
class CreateContext:
    spec: BaySpec
    provider: Provider
    state: BayState
    status: Status
    options: CreateOptions = dataclasses.field(default_factory=CreateOptions)
    conn: object = None  # openstacksdk Connection for the cloud providers
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def login(self) -> Login:
        """How the steps log in to the nodes (the bay's state holds it: one place)."""
        return self.state.login

    def request(self) -> BayRequest:
        """The spec as the provider interface asks for it."""
        request = request_from_spec(self.spec)
        if self.provider.info.installs_login_key:
            request.ssh_public_key = public_key_of(self.login.key)
        return request

    def save(self) -> None:
        self.state.save()


def public_key_of(private_key_path: str) -> str:
    """The OpenSSH public line of a private key file (the private half is never printed)."""
    from bayctl.errors import SpecError
    from bayctl.remote.errors import KeyUnreadable
    from bayctl.remote.keys import public_key_line

    try:
        return public_key_line(private_key_path)
    except KeyUnreadable as exc:  # said as a spec field: the key was given in the bay's spec
        raise SpecError(f"cannot read private key {exc.path}: {exc.why}", field="ssh_key") from None


def request_from_spec(spec: BaySpec) -> BayRequest:
    return BayRequest(
        name=spec.name, slaves=spec.slaves, image=spec.image, keypair=spec.keypair,
        master_flavor=spec.master_flavor or spec.flavor, slave_flavor=spec.flavor,
        external_network=spec.external_network, labels=dict(spec.labels), timeout=spec.timeout, extra={},
        container_cidr=spec.container_cidr,
    )

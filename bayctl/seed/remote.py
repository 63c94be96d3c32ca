"""What seeding runs on a node, and how its answers are read.

Two ways to reach the node's agent, both through the same SSH connection:

- ``cli``: the node's own ``bayctl node show -f json`` and
  ``bayctl node apply -`` (the node agent's published CLI). Each is a Python start on the
  node (~0.3 s of CPU).
- ``curl`` (the default, what every bay uses): the agent's HTTP API on its unix socket
  through ``curl --unix-socket`` (GET/PUT /v1/policy, the same API the CLI calls). Same
  effect, ~100x cheaper on the node.

Either way the node is asked the same things: to apply the policy (text on stdin, never on a
command line) unless it already holds the policy's digest, and then its digest (the read-back).

- ``cli``: three commands, three Python starts: show (the digest, compared here), apply (only
  when it differs), show again.
- ``curl``: ONE command per node: one curl making two requests, a conditional
  ``PUT /v1/policy`` with ``If-None-Match: "<digest>"`` (the agent answers 412 and rewrites
  nothing when it holds that digest already) and then ``GET /v1/policy``. One SSH channel, one
  shell and one curl per node instead of three of each: most of a node's seeding cost.
"""

import json
import re
import shlex
from typing import Optional

from bayctl.errors import NodeError
from bayctl.node.protocol import DEFAULT_SOCKET, ENV_SOCKET

# curl's status line is appended after the body so one call gives both.
_CURL_STATUS_MARK = "\nbayctl-http-status:"
# The agent's bodies are one line of JSON, so a mark at a line start cannot come from a body.
_CURL_ANSWERS = re.compile(r"\n?bayctl-http-status:(\d{3})\n?")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
HTTP_PRECONDITION_FAILED = 412


class RemoteAgent:
    """What both ways share: the socket, sudo, and reading one answer's digest."""

    mode = ""

    def __init__(self, agent_socket: Optional[str] = None, sudo: bool = False):
        self.agent_socket = agent_socket
        # The agent's socket is root's only (0600): a login that is not root (a cloud image's
        # `debian`) asks through sudo, never interactively (-n: no password prompt to hang on).
        self.sudo = sudo

    def as_root(self, command: str) -> str:
        return f"sudo -n {command}" if self.sudo else command

    def parse_digest(self, exit_status: Optional[int], stdout: str, stderr: str) -> Optional[str]:
        """The digest a show command reports (None: the node has no policy). NodeError if it failed."""
        return _digest_of(self._body(exit_status, stdout, stderr))

    def check_applied(self, exit_status: Optional[int], stdout: str, stderr: str) -> None:
        """Raise NodeError with the agent's reason unless the apply command succeeded."""
        self._body(exit_status, stdout, stderr)

    def _body(self, exit_status, stdout, stderr) -> str:
        raise NotImplementedError

    async def seed(self, run, policy_text: str, wanted: str, stage: list):
        """Apply `policy_text` unless the agent holds `wanted`, then read back: (applied, digest).

        run(command, stdin) -> (exit status, stdout, stderr) on the node; stage[0] is kept at
        what is being done, for the reason when a time limit strikes."""
        raise NotImplementedError


class CurlAgent(RemoteAgent):
    """The agent's HTTP API through curl: ONE command per seeded node (the default)."""

    mode = "curl"

    def show_command(self) -> str:
        return self.as_root(self._curl("GET"))

    def apply_command(self) -> str:
        return self.as_root(self._curl("PUT", "--data-binary @- -H 'Content-Type: application/yaml'"))

    def seed_command(self, digest: str) -> str:
        """PUT unless the agent holds `digest` (policy on stdin), then GET, in one curl."""
        if not _SHA256_HEX.match(digest or ""):
            raise ValueError(f"not a policy digest: {digest!r}")
        condition = f"-H 'If-None-Match: \"{digest}\"' "
        put = self._curl("PUT", condition + "--data-binary @- -H 'Content-Type: application/yaml'",
                         status_newline=True)
        get = self._curl("GET").split(" ", 1)[1]  # --next: the same options again, without "curl"
        # --fail-early: a request that gets no answer ends curl with its own exit status.
        return self.as_root(f"{put.replace('curl ', 'curl --fail-early ', 1)} --next {get}")

    async def seed(self, run, policy_text: str, wanted: str, stage: list):
        stage[0] = "applying the policy unless the node holds it, and reading it back"
        return self.parse_seed(*await run(self.seed_command(wanted), policy_text))

    def socket_word(self) -> str:
        # Without an explicit socket the node's own BAYCTL_AGENT_SOCKET (or the default)
        # decides, as it does for `bayctl node ...` there.
        if self.agent_socket:
            return shlex.quote(self.agent_socket)
        return f'"${{{ENV_SOCKET}:-{DEFAULT_SOCKET}}}"'

    def _curl(self, method: str, extra: str = "", status_newline: bool = False) -> str:
        end = "\\n" if status_newline else ""  # curl's -w expands \n: the next answer starts a line
        return (f"curl -sS --max-time 20 --unix-socket {self.socket_word()} -X {method} {extra} "
                f"-w '{_CURL_STATUS_MARK.strip()}%{{http_code}}{end}' http://agent/v1/policy"
                ).replace("  ", " ")

    def parse_seed(self, exit_status: Optional[int], stdout: str, stderr: str):
        """What a seed command did: (applied, digest read back). NodeError if either request failed.

        applied is False when the agent refused the conditional PUT because it already held the
        digest (412: nothing rewritten); the read-back digest is what the agent holds after."""
        self.check_curl_exit(exit_status, stderr)
        answers = _CURL_ANSWERS.split(stdout)  # [body, status, body, status, ""]
        if len(answers) != 5 or answers[4].strip():
            raise NodeError(f"unreadable answer from the node's agent: {_first_line(stdout)!r}")
        put_body, put_status, get_body, get_status = answers[0], int(answers[1]), answers[2], answers[3]
        if put_status != HTTP_PRECONDITION_FAILED:
            check_status(put_status, put_body)
        check_status(int(get_status), get_body)
        return put_status != HTTP_PRECONDITION_FAILED, _digest_of(get_body)

    def check_curl_exit(self, exit_status, stderr) -> None:
        if exit_status == 127:
            raise NodeError("curl not found on the node (exit 127)")
        if exit_status == 7:  # curl: could not connect
            raise NodeError(f"agent not running (no answer on {self.agent_socket or 'its socket'})")
        if exit_status != 0:
            raise NodeError(_command_failure(exit_status, stderr))

    def _body(self, exit_status, stdout, stderr) -> str:
        self.check_curl_exit(exit_status, stderr)
        body, _, status = stdout.rpartition(_CURL_STATUS_MARK.strip())
        body = body.rstrip("\n")
        if not status.strip().isdigit():
            raise NodeError("unreadable answer from the node's agent")
        check_status(int(status), body)
        return body


class CliAgent(RemoteAgent):
    """The node's own `bayctl node show/apply`: three commands, three Python starts per node.

    Kept for nodes without curl and as bench/seed.py's yardstick for the curl way."""

    mode = "cli"

    def __init__(self, agent_socket: Optional[str] = None, sudo: bool = False, bayctl: str = "bayctl"):
        super().__init__(agent_socket, sudo)
        self.bayctl = bayctl

    def show_command(self) -> str:
        return self.as_root(f"{shlex.quote(self.bayctl)} node show -f json{self._socket_flag()}")

    def apply_command(self) -> str:
        return self.as_root(f"{shlex.quote(self.bayctl)} node apply -{self._socket_flag()}")

    async def seed(self, run, policy_text: str, wanted: str, stage: list):
        stage[0] = "reading the node's policy"
        current = self.parse_digest(*await run(self.show_command(), None))
        if current == wanted:
            return False, current
        stage[0] = "applying the policy"
        self.check_applied(*await run(self.apply_command(), policy_text))
        stage[0] = "reading the policy back"
        return True, self.parse_digest(*await run(self.show_command(), None))

    def _socket_flag(self) -> str:
        return f" --socket {shlex.quote(self.agent_socket)}" if self.agent_socket else ""

    def _body(self, exit_status, stdout, stderr) -> str:
        if exit_status != 0:
            raise NodeError(_command_failure(exit_status, stderr or stdout))
        return stdout


MODES = {"curl": CurlAgent, "cli": CliAgent}


def remote_agent(mode: str = "curl", *, agent_socket: Optional[str] = None, sudo: bool = False,
                 bayctl: str = "bayctl") -> RemoteAgent:
    """The agent's way for `mode` ("curl", the default, or "cli")."""
    if mode not in MODES:
        raise ValueError(f"unknown remote mode {mode!r} (one of {', '.join(MODES)})")
    if mode == "cli":
        return CliAgent(agent_socket, sudo, bayctl=bayctl)
    return CurlAgent(agent_socket, sudo)


def _digest_of(body: str) -> Optional[str]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise NodeError(f"unreadable answer from the node's agent: {_first_line(body)!r}") from None
    if not isinstance(doc, dict) or "digest" not in doc:
        raise NodeError("the node's agent answered without a digest")
    digest = doc["digest"]
    return digest if digest and digest != "None" else None


def check_status(status: int, body: str) -> None:
    if status < 200:  # 000: curl wrote no status (no answer)
        raise NodeError("no answer from the node's agent")
    if status >= 400:
        try:
            reason = json.loads(body)["error"]
        except (ValueError, KeyError, TypeError):
            reason = _first_line(body) or f"HTTP {status}"
        raise NodeError(f"agent: {reason}")


def _command_failure(exit_status, text) -> str:
    if exit_status == 127:
        return "bayctl not found on the node (exit 127)"
    if exit_status is None:
        return "the remote command was killed"
    return _last_line(text) or f"the remote command exited {exit_status}"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""

"""HTTP/1.1 with JSON bodies on a root-only unix socket: the agent's transport.

Only the transport lives here (claiming the socket path, permissions, threads, JSON
framing); what each request means is bayctl.node.api's job.
"""

import http.server
import json
import logging
import os
import re
import select
import socket
import socketserver
import stat
import sys

from bayctl.errors import NodeError

LOG = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024     # a 100k-entry policy is a few MB of YAML
IDLE_TIMEOUT = 120              # seconds a kept-alive connection may sit idle
_DIGITS = re.compile(r"[0-9]+", re.ASCII)   # RFC 9110 8.6: Content-Length = 1*DIGIT


class ApiError(Exception):
    """A request the API refuses: becomes `{"error": message}` with `status`."""

    def __init__(self, status, message):
        self.status = status
        super().__init__(message)


def claim_socket_path(path, owner="agent", dir_mode=0o700):
    """Make `path` free for our socket: remove a stale one, refuse if a server answers on it.

    Never removes anything that is not a socket: a mistyped --socket must not delete a file.
    `owner` names the kind of server in the refusal ("another agent is already running at ...").
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        # Root-only by default: the agent's socket is the node's policy control point.
        os.makedirs(directory, mode=dir_mode, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise NodeError(f"{path} exists and is not a socket: refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        LOG.info("removing stale socket %s", path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    except OSError as exc:
        raise NodeError(f"cannot check existing socket {path}: {exc.strerror or exc}") from exc
    finally:
        probe.close()
    raise NodeError(f"another {owner} is already running at {path}")


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One thread per connection; the socket file is created 0600 (never briefly wider).

    The socket path is claimed (stale socket replaced, a live server refused) and, on
    remove_socket(), removed only while it is still the socket this server bound: a second
    server that took the path over after us keeps its socket.
    """

    daemon_threads = True           # a kept-alive client must not hold up shutdown
    allow_reuse_address = False
    # A unix socket refuses connect() with EAGAIN once the backlog is full (socketserver's
    # default is 5): a burst of container starts must queue, not fail.
    request_queue_size = 128

    def __init__(self, path, handler_class, app, owner="agent", dir_mode=0o700):
        self.app = app
        claim_socket_path(path, owner=owner, dir_mode=dir_mode)
        super().__init__(path, handler_class, bind_and_activate=False)
        old_umask = os.umask(0o177)
        try:
            self.server_bind()
        finally:
            os.umask(old_umask)
        bound = os.lstat(path)
        self._bound = (bound.st_dev, bound.st_ino)
        os.chmod(path, 0o600)
        self.server_activate()

    def remove_socket(self):
        try:
            now = os.lstat(self.server_address)
        except FileNotFoundError:
            return
        if (now.st_dev, now.st_ino) != self._bound:
            LOG.warning("%s is no longer our socket: left in place", self.server_address)
            return
        try:
            os.unlink(self.server_address)
        except FileNotFoundError:
            pass

    def handle_error(self, request, client_address):
        # socketserver's default prints a traceback to stderr. A client that hung up is
        # routine (one line); anything else is a bug of ours (logged with its traceback).
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            LOG.warning("client went away mid-request: %s", exc.strerror or type(exc).__name__)
        else:
            LOG.error("request failed: %s: %s", type(exc).__name__, exc, exc_info=exc)


class HardenedHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 framing that cannot be fooled, answering every error as one JSON document.

    - A request's whole body is read before it is answered (Content-Length, any method), so
      no body is ever parsed as the next request; a body cut short, a Content-Length that is
      not a plain number or is given twice differently, or any Transfer-Encoding: the request
      is refused and the connection closed.
    - http.server's own parse errors (bad request line, unknown method, HTTP/2+, URI or
      headers too long) answer JSON like every other error, never HTML.
    Subclasses add do_<METHOD> methods calling `self.read_body()` and `self.send_document()`.
    """

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    content_type = "application/json"
    body_required_for = ()          # methods that must carry Content-Length (else 411)

    def error_document(self, message):
        """The body of an error answer: the message on one line (a client shows it as is)."""
        if "\n" in message or "\r" in message:
            message = " ".join(message.split())
        return {"error": message}

    def parse_request(self):
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(400, "request line without an HTTP version: send HTTP/1.1")
            return False
        return True

    def send_error(self, code, message=None, explain=None):
        """Every error http.server answers by itself, as JSON; the connection is closed after it."""
        self.close_connection = True
        if self.request_version in ("HTTP/0.9", ""):
            # Not parsed far enough to know the client's version: answer with a status line anyway.
            self.request_version = self.protocol_version
        if code == 414 and not message:
            message = "request line longer than 65536 bytes"    # http.server's limit
        try:
            phrase = http.HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.send_document(code, self.error_document(" ".join(str(message or phrase).split())))

    def read_body(self):
        """The request's body (b"" when it has none). Raises ApiError when the framing is bad,
        having marked the connection to be closed: what follows cannot be trusted."""
        encoding = self.headers.get("Transfer-Encoding")
        lengths = [value.strip() for value in self.headers.get_all("Content-Length") or []]
        if encoding is not None:
            self.close_connection = True
            if "chunked" in encoding.lower():
                raise ApiError(411, "chunked bodies are not supported: send Content-Length")
            raise ApiError(411, f"Transfer-Encoding {encoding.strip()!r} is not supported: "
                                "send Content-Length")
        if not lengths:
            if self.command in self.body_required_for:
                self.close_connection = True
                raise ApiError(411, "Content-Length required")
            return b""
        if len(set(lengths)) > 1:
            self.close_connection = True
            raise ApiError(400, f"conflicting Content-Length headers ({', '.join(lengths)})")
        if not _DIGITS.fullmatch(lengths[0]):
            self.close_connection = True
            raise ApiError(400, f"bad Content-Length {lengths[0]!r}: expected a number of bytes")
        length = int(lengths[0])
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, f"body too large ({length} bytes, at most {MAX_BODY})")
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise ApiError(408, f"body not received within {IDLE_TIMEOUT} s") from None
        if len(body) < length:
            self.close_connection = True
            raise ApiError(400, f"body ended after {len(body)} of {length} bytes (Content-Length): "
                                "request ignored")
        return body

    def send_document(self, status, document):
        payload = (json.dumps(document, sort_keys=True) + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(payload)))
        if status >= 400 and self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    # Unix peers have no address; requests are logged by the application, not per HTTP line.
    def address_string(self):
        return "unix"

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        LOG.debug("%s", format % args)


class JsonLines:
    """An answer streamed as JSON lines (application/x-ndjson) until the producer ends or the
    client hangs up. `produce(client_gone)` yields documents, or None when it has nothing
    for a while (the handler then checks the client); `client_gone()` says it went away."""

    content_type = "application/x-ndjson"

    def __init__(self, produce):
        self.produce = produce


def _peer_closed(sock):
    """Has the client closed its side (or sent more, which a streaming answer does not expect)?"""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and not sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return True


class JsonHandler(HardenedHandler):
    """The agent's requests: calls `self.server.app.handle(method, path, body, headers)`.

    `app.handle` returns (status, document) or raises ApiError; anything else it raises
    becomes a 500 whose one-line message is logged with its traceback.
    """

    server_version = "bayctl-agent"
    body_required_for = ("PUT", "POST")

    def do_GET(self):
        self._dispatch("GET")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        try:
            body = self.read_body()
        except ApiError as exc:     # the framing was bad: nothing reaches the application
            self.send_document(exc.status, self.error_document(str(exc)))
            return
        if (method, self.path) in getattr(self.server.app, "dropped_when_caller_left", ()) \
                and _peer_closed(self.connection):
            # The caller gave up before its call was reached (its timeout passed while this
            # agent was stopped or swamped) and went on as if it failed: running it now would
            # leave what nobody asks for any more. (Only calls whose clients never half-close:
            # a client may shut its write side and still wait for the answer.)
            LOG.info("%s %s not run: the client hung up before it was reached", method, self.path)
            self.close_connection = True
            return
        try:
            status, document = self.server.app.handle(method, self.path, body, dict(self.headers))
        except ApiError as exc:
            status, document = exc.status, self.error_document(str(exc))
        except NodeError as exc:
            status, document = 500, self.error_document(str(exc))
        except Exception as exc:  # noqa: BLE001 - the client gets one line, the log the details
            LOG.exception("internal error on %s %s", method, self.path)
            status, document = 500, self.error_document(f"internal error: {type(exc).__name__}: {exc}")
        if isinstance(document, JsonLines):
            self._stream(status, document)
        else:
            self.send_document(status, document)

    def _stream(self, status, lines):
        """No Content-Length: the answer ends when the connection closes."""
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", lines.content_type)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        gone = [False]

        def client_gone():
            gone[0] = gone[0] or _peer_closed(self.connection)
            return gone[0]

        try:
            for document in lines.produce(client_gone):
                if document is None:
                    continue
                self.wfile.write((json.dumps(document, sort_keys=True) + "\n").encode("utf-8"))
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: the usual end of a follow

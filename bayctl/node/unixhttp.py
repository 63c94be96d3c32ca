"""HTTP/1.1 with JSON bodies on a root-only unix socket: the agent's transport.

Only the transport lives here (claiming the socket path, permissions, threads, JSON
framing); what each request means is bayctl.node.api's job.
"""

import http.server
import json
import logging
import os
import socket
import socketserver
import stat

from bayctl.errors import NodeError

LOG = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024     # a 100k-entry policy is a few MB of YAML
IDLE_TIMEOUT = 120              # seconds a kept-alive connection may sit idle


class ApiError(Exception):
    """A request the API refuses: becomes `{"error": message}` with `status`."""

    def __init__(self, status, message):
        self.status = status
        super().__init__(message)


def claim_socket_path(path):
    """Make `path` free for our socket: remove a stale one, refuse if an agent answers on it.

    Never removes anything that is not a socket: a mistyped --socket must not delete a file.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        # Root-only: the socket is the node's policy control point.
        os.makedirs(directory, mode=0o700, exist_ok=True)
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
    raise NodeError(f"another agent is already running at {path}")


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """One thread per connection; the socket file is created 0600 (never briefly wider)."""

    daemon_threads = True           # a kept-alive client must not hold up shutdown
    allow_reuse_address = False
    # A unix socket refuses connect() with EAGAIN once the backlog is full (socketserver's
    # default is 5): a burst of container starts must queue, not fail.
    request_queue_size = 128

    def __init__(self, path, handler_class, app):
        self.app = app
        claim_socket_path(path)
        super().__init__(path, handler_class, bind_and_activate=False)
        old_umask = os.umask(0o177)
        try:
            self.server_bind()
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self.server_activate()

    def remove_socket(self):
        try:
            os.unlink(self.server_address)
        except FileNotFoundError:
            pass


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """Reads a request, calls `self.server.app.handle(method, path, body)`, writes JSON back.

    `app.handle` returns (status, document) or raises ApiError; anything else it raises
    becomes a 500 whose one-line message is logged with its traceback.
    """

    protocol_version = "HTTP/1.1"
    server_version = "bayctl-agent"
    timeout = IDLE_TIMEOUT

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
            body = self._read_body(method)
            status, document = self.server.app.handle(method, self.path, body, dict(self.headers))
        except ApiError as exc:
            status, document = exc.status, {"error": str(exc)}
        except NodeError as exc:
            status, document = 500, {"error": str(exc)}
        except Exception as exc:  # noqa: BLE001 - the client gets one line, the log the details
            LOG.exception("internal error on %s %s", method, self.path)
            status, document = 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}
        self._send_json(status, document)

    def _read_body(self, method):
        if method not in ("PUT", "POST"):
            return b""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ApiError(411, "chunked bodies are not supported: send Content-Length")
        length = self.headers.get("Content-Length")
        if length is None:
            self.close_connection = True
            raise ApiError(411, "Content-Length required")
        try:
            length = int(length)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, f"bad Content-Length {length!r}") from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, f"body too large ({length} bytes, at most {MAX_BODY})")
        return self.rfile.read(length)

    def _send_json(self, status, document):
        payload = (json.dumps(document, sort_keys=True) + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    # Unix peers have no address; requests are logged by the API, not per HTTP line.
    def address_string(self):
        return "unix"

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler's signature
        LOG.debug("%s", format % args)

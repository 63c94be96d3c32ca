"""The Docker plugin wire protocol: JSON over HTTP/1.1 on a unix socket.

As dockerd 20.10 speaks it (PLATFORM.md): every call is `POST /<Interface>.<Method>` with a
JSON body; answers carry the content type below; an error is HTTP 500 `{"Err": "..."}`, which
dockerd shows the user verbatim, so it is kept to one clear line.
"""

import json
import logging
import os
import socketserver
import stat
from http.server import BaseHTTPRequestHandler

from bayctl.errors import BayctlError

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
LOG = logging.getLogger(__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bayctl-docker-plugin"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        route = self.server.routes.get(self.path)
        if route is None:
            # Unknown calls (newer dockerd) must not break anything: say so, as docker expects.
            self._answer(404, {"Err": f"{self.path} is not implemented by bayctl"})
            return
        try:
            request = json.loads(raw) if raw.strip() else {}
            if not isinstance(request, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as e:
            self._answer(400, {"Err": f"{self.path}: bad request body ({e})"})
            return
        LOG.debug("%s %s", self.path, raw.decode("utf-8", "replace"))
        try:
            answer = route(request)
        except BayctlError as e:
            LOG.warning("%s failed: %s", self.path, e)
            self._answer(500, {"Err": _one_line(str(e))})
            return
        except Exception as e:  # a bug must still reach the user as one line, and not kill the plugin
            LOG.exception("%s failed", self.path)
            self._answer(500, {"Err": _one_line(f"bayctl internal error in {self.path}: {e}")})
            return
        self._answer(200, answer if answer is not None else {})

    do_GET = do_POST

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):  # the default one indexes client_address, empty on unix sockets
        LOG.debug("docker: " + fmt, *args)


class PluginServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Serves `routes` ("/NetworkDriver.Join" -> callable(request) -> answer) on `socket_path`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, socket_path, routes):
        self.routes = dict(routes)
        self.socket_path = socket_path
        os.makedirs(os.path.dirname(socket_path), mode=0o755, exist_ok=True)
        _remove_stale_socket(socket_path)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            super().__init__(socket_path, _Handler)
        finally:
            os.umask(old_umask)
        os.chmod(socket_path, 0o600)

    def server_close(self):
        super().server_close()
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass


def _remove_stale_socket(path):
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BayctlError(f"{path} exists and is not a socket; refusing to replace it")
    os.unlink(path)


def _one_line(message):
    return " ".join(message.split())

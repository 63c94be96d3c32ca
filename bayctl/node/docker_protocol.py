"""The Docker plugin wire protocol: JSON over HTTP/1.1 on a unix socket.

As dockerd 20.10 speaks it (PLATFORM.md): every call is `POST /<Interface>.<Method>` with a
JSON body; answers carry the content type below; an error is HTTP 500 `{"Err": "..."}`, which
dockerd shows the user verbatim, so it is kept to one clear line.
"""

import json
import logging

from bayctl.errors import BayctlError
from bayctl.node.unixhttp import ApiError, HardenedHandler, UnixHTTPServer

CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
LOG = logging.getLogger(__name__)


class _Handler(HardenedHandler):
    """The agent's hardened framing (bodies read whole, JSON for every error), speaking
    the plugin protocol: the plugin content type and `{"Err": ...}` errors."""

    server_version = "bayctl-docker-plugin"
    content_type = CONTENT_TYPE

    def error_document(self, message):
        return {"Err": message}

    def do_POST(self):
        try:
            raw = self.read_body()
        except ApiError as e:
            self._answer(e.status, {"Err": str(e)})
            return
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
        self.send_document(status, body)


class PluginServer(UnixHTTPServer):
    """Serves `routes` ("/NetworkDriver.Join" -> callable(request) -> answer) on `socket_path`.

    The agent's unix HTTP server: the socket is born 0600, a second plugin on a live socket
    is refused, and on exit only our own socket is removed (never a successor's).
    """

    def __init__(self, socket_path, routes):
        self.routes = dict(routes)
        self.socket_path = socket_path
        # dockerd looks for plugin sockets in this directory: others may live there too.
        super().__init__(socket_path, _Handler, app=None, owner="bayctl-docker-plugin", dir_mode=0o755)

    def server_close(self):
        super().server_close()
        self.remove_socket()


def _one_line(message):
    return " ".join(message.split())

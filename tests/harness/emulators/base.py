"""A small threaded WSGI service with token validation against the real keystone.

Shared by the emulators: routing by (method, path regex), JSON bodies, and an error body
shape chosen by each service (Nova's `{"itemNotFound": {...}}`, Neutron's
`{"NeutronError": {...}}`, Magnum's `{"errors": [...]}`).
"""

import json
import re
import socketserver
import threading
import urllib.parse
from wsgiref import simple_server


class HTTPError(Exception):
    def __init__(self, status, message, kind=None):
        self.status, self.message, self.kind = status, message, kind
        super().__init__(message)


REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 406: "Not Acceptable",
           409: "Conflict", 413: "Request Entity Too Large", 500: "Internal Server Error"}


class Request:
    def __init__(self, environ, match):
        self.environ = environ
        self.method = environ["REQUEST_METHOD"]
        self.path = environ.get("PATH_INFO", "")
        self.query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
        self.params = match.groupdict()
        self.headers = {k[5:].replace("_", "-").lower(): v
                        for k, v in environ.items() if k.startswith("HTTP_")}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            self.body = json.loads(raw) if raw else {}
        except ValueError:
            raise HTTPError(400, "Malformed request body") from None
        self.token = None  # token info from keystone: {"project": {...}, "roles": [...], ...}
        self.extra_headers = []

    def arg(self, name, default=None):
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def project_id(self):
        return self.token["project"]["id"]

    @property
    def is_admin(self):
        return any(r["name"] == "admin" for r in self.token.get("roles", []))


class KeystoneValidator:
    """Validates X-Auth-Token with keystone (GET /v3/auth/tokens), as keystonemiddleware does."""

    def __init__(self, auth):
        import openstack

        self._conn = openstack.connect(**auth)
        self._tokens_url = auth["auth_url"].rstrip("/") + "/auth/tokens"
        self._cache = {}
        self._lock = threading.Lock()

    def validate(self, token):
        with self._lock:
            if token in self._cache:
                return self._cache[token]
        resp = self._conn.session.get(self._tokens_url, headers={"X-Subject-Token": token}, raise_exc=False)
        if resp.status_code != 200:
            return None
        info = resp.json()["token"]
        with self._lock:
            self._cache[token] = info
        return info

    def close(self):
        self._conn.close()


class Service:
    """Subclasses fill `routes` with (method, regex, handler) and implement `error_body`."""

    name = "service"

    def __init__(self, validator):
        self.validator = validator
        self.routes = []
        self.lock = threading.RLock()
        self.calls = []  # (method, path) of every request, for tests that count

    def route(self, method, pattern, handler, auth=True):
        self.routes.append((method, re.compile("^" + pattern + "/?$"), handler, auth))

    def error_body(self, status, message, kind):
        raise NotImplementedError

    def response_headers(self, request):
        return []

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        self.calls.append((method, path))
        try:
            allowed = False
            for m, rx, handler, auth in self.routes:
                match = rx.match(path)
                if not match:
                    continue
                allowed = True
                if m != method:
                    continue
                request = Request(environ, match)
                if auth:
                    token = request.headers.get("x-auth-token")
                    request.token = self.validator.validate(token) if token else None
                    if request.token is None:
                        raise HTTPError(401, "The request you have made requires authentication.",
                                        "Unauthorized")
                status, body = handler(request)
                return self._respond(start_response, status, body,
                                     self.response_headers(request) + request.extra_headers)
            if allowed:
                raise HTTPError(405, f"Method {method} not allowed on {path}", "HTTPMethodNotAllowed")
            raise HTTPError(404, f"The resource could not be found: {path}", "NotFound")
        except HTTPError as e:
            return self._respond(start_response, e.status, self.error_body(e.status, e.message, e.kind),
                                 [])

    def _respond(self, start_response, status, body, headers):
        data = b"" if body is None else json.dumps(body).encode()
        headers = headers + [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        start_response(f"{status} {REASONS.get(status, '')}", headers)
        return [data]


class _Handler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class Running:
    """A service served on 127.0.0.1:port in a background thread."""

    def __init__(self, app, port):
        self.app = app
        self.server = simple_server.make_server("127.0.0.1", port, app, server_class=_ThreadingServer,
                                                handler_class=_Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name=f"emulator-{port}", daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

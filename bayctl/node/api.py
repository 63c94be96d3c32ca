"""The agent's HTTP API (see docs in README "The node"): maps requests onto Agent calls.

    PUT    /v1/policy            body: policy YAML   -> {"digest", "entries"}
    GET    /v1/policy                                -> {"digest", "groups", "source"}
    DELETE /v1/policy                                -> fail closed (deny all)
    POST   /v1/endpoints         {"ip", "group", "ifname"?, "netns"?} -> 201 endpoint
    DELETE /v1/endpoints/<ip>                        -> idempotent
    GET    /v1/endpoints                             -> {"endpoints": [...]}
    GET    /v1/stats                                 -> {"pairs": [...], "drops": {...}}
    GET    /v1/health                                -> {"ok": true, "digest"}

Errors are `{"error": "one line"}` with a 4xx/5xx status.
"""

import json
import urllib.parse

from bayctl.errors import PolicyError
from bayctl.node.unixhttp import ApiError

ENDPOINT_FIELDS = {"ip", "group", "ifname", "netns"}
# Optional request header naming the policy's file, so errors read "web-db.yaml:12: ...".
SOURCE_HEADER = "X-Bayctl-Source"


class AgentApi:
    def __init__(self, agent):
        self.agent = agent

    def handle(self, method, path, body, headers):
        path = urllib.parse.urlsplit(path).path.rstrip("/")
        if path == "/v1/policy":
            return self._policy(method, body, headers)
        if path == "/v1/endpoints":
            return self._endpoints(method, body)
        if path.startswith("/v1/endpoints/"):
            _allow(method, "DELETE")
            ip = urllib.parse.unquote(path[len("/v1/endpoints/"):])
            return 200, self.agent.remove_endpoint(ip)
        if path == "/v1/stats":
            _allow(method, "GET")
            return 200, self.agent.stats()
        if path == "/v1/health":
            _allow(method, "GET")
            return 200, self.agent.health()
        raise ApiError(404, f"no such resource: {path or '/'}")

    def _policy(self, method, body, headers):
        _allow(method, "GET", "PUT", "DELETE")
        if method == "GET":
            return 200, self.agent.show_policy()
        if method == "DELETE":
            return 200, self.agent.clear_policy()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ApiError(400, f"policy is not UTF-8 text (byte {exc.start})") from None
        # Printable and short: it ends up in error messages and the log.
        source = "".join(c for c in (_header(headers, SOURCE_HEADER) or "") if c.isprintable())[:200]
        source = source or "<request>"
        try:
            return 200, self.agent.apply_policy(text, source=source)
        except PolicyError as exc:
            raise ApiError(400, str(exc)) from None

    def _endpoints(self, method, body):
        _allow(method, "GET", "POST")
        if method == "GET":
            return 200, {"endpoints": self.agent.endpoints()}
        try:
            request = json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError(400, f"endpoint request is not JSON: {exc}") from None
        if not isinstance(request, dict):
            raise ApiError(400, 'endpoint request must be a JSON object {"ip": ..., "group": ...}')
        unknown = sorted(set(request) - ENDPOINT_FIELDS)
        if unknown:
            raise ApiError(400, f"unknown endpoint field(s): {', '.join(unknown)}")
        for field in ("ip", "group"):
            if field not in request:
                raise ApiError(400, f"endpoint field '{field}' is required")
        endpoint = self.agent.add_endpoint(
            request["ip"], request["group"], ifname=request.get("ifname"), netns=request.get("netns")
        )
        return 201, endpoint


def _allow(method, *allowed):
    if method not in allowed:
        raise ApiError(405, f"method {method} not allowed here (allowed: {', '.join(allowed)})")


def _header(headers, name):
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None

"""The agent's HTTP API (see docs in README "The node"): maps requests onto Agent calls.

    PUT    /v1/policy            body: policy YAML   -> {"digest", "entries"}
                                 with `If-None-Match: "<digest>"`: 412 and nothing rewritten
                                 when the agent already holds that digest (seeding's check)
    GET    /v1/policy                                -> {"digest", "groups", "source"}
    DELETE /v1/policy                                -> fail closed (deny all)
    POST   /v1/endpoints         {"ip", "group", "ifname"?, "netns"?, "allow_uplink"?} -> 201 endpoint
                                 (409 for the interface of the agent's own default route,
                                 unless "allow_uplink": true)
    DELETE /v1/endpoints/<ip>                        -> idempotent
    GET    /v1/endpoints                             -> {"endpoints": [...]}
    PUT    /v1/policy/staged     body: policy YAML   -> audit mode: staged beside the active policy,
                                 counted where its verdict differs -> {"digest", "entries", "active"}
    GET    /v1/policy/staged                         -> {"digest", "source", "since", "active", "pairs"}
    DELETE /v1/policy/staged                         -> {"digest": null, "discarded"}
    POST   /v1/policy/staged/promote                 -> the staged policy applied as PUT /v1/policy does;
                                 `If-Match: "<digest>"`: 412 unless that is what is staged; 409 if none
    GET    /v1/stats                                 -> {"pairs": [...], "drops": {...}}
    GET    /v1/health                                -> {"ok": true, "digest"}
    GET    /v1/flows?verdict=denied&from=G&to=G&since=EPOCH&limit=N
                                 -> {"flows": [...]} from the bounded history (bayctl/node/flows.py)
    GET    /v1/flows?follow=1&...                    -> JSON lines, one flow each, until the client
                                 hangs up (history=1: the matching past flows first)
    GET    /v1/flows/status                          -> events emitted / lost, the rate limit
    PUT    /v1/flows/limit       {"rate", "burst", "enabled"?} -> the limit now applied
    POST   /v1/cni               {"environ", "stdin", "namespaces"} -> {"document", "status", "stderr"}:
                                 a bayctl-cni call run here (cni_service.py); 409 from another namespace
    PUT    /v1/distribution      {"hosts", "root", "node", "auth"} -> watch the bay's ZooKeeper
    GET    /v1/distribution                          -> {"hosts", "root", "node", "connected", ...}
                                 (the secret is never shown)
    DELETE /v1/distribution                          -> {"hosts": null}: stop watching, forget the
                                 saved configuration and its secret (the policy held stays)

Errors are `{"error": "one line"}` with a 4xx/5xx status.
"""

import json
import urllib.parse

from bayctl.errors import NodeError, PolicyError
from bayctl.node.flows import FlowFilter
from bayctl.node.protocol import IF_MATCH, IF_NONE_MATCH, SOURCE_HEADER
from bayctl.node.unixhttp import ApiError, JsonLines

ENDPOINT_FIELDS = {"ip", "group", "ifname", "netns", "allow_uplink"}


class AgentApi:
    # Calls not run for a client that hung up before they were reached (unixhttp.JsonHandler):
    # the CNI plugin gives up after its agentTimeout and answers the runtime, or runs DEL itself.
    dropped_when_caller_left = {("POST", "/v1/cni")}

    def __init__(self, agent):
        self.agent = agent

    def handle(self, method, path, body, headers):
        path_and_query = path
        path = urllib.parse.urlsplit(path).path.rstrip("/")
        if path == "/v1/policy":
            return self._policy(method, body, headers)
        if path == "/v1/policy/staged":
            return self._staged(method, body, headers)
        if path == "/v1/policy/staged/promote":
            _allow(method, "POST")
            try:
                return 200, self.agent.staging.promote(_entity_tags(_header(headers, IF_MATCH)))
            except PolicyError as exc:
                raise ApiError(400, str(exc)) from None
        if path == "/v1/endpoints":
            return self._endpoints(method, body)
        if path.startswith("/v1/endpoints/"):
            _allow(method, "DELETE")
            ip = urllib.parse.unquote(path[len("/v1/endpoints/"):])
            return 200, self.agent.remove_endpoint(ip)
        if path == "/v1/stats":
            _allow(method, "GET")
            return 200, self.agent.stats()
        if path == "/v1/flows":
            _allow(method, "GET")
            return self._flows(urllib.parse.urlsplit(path_and_query).query)
        if path == "/v1/flows/status":
            _allow(method, "GET")
            return 200, self._flow_log().status()
        if path == "/v1/flows/limit":
            _allow(method, "PUT")
            return 200, self._flow_limit(body)
        if path == "/v1/health":
            _allow(method, "GET")
            return 200, self.agent.health()
        if path == "/v1/distribution":
            return self._distribution(method, body)
        if path == "/v1/cni":
            _allow(method, "POST")
            from bayctl.node.cni_service import run_call

            return 200, run_call(body)
        raise ApiError(404, f"no such resource: {path or '/'}")

    def _flow_log(self):
        flows = getattr(self.agent, "flows", None)
        if flows is None:
            raise ApiError(503, "flow events are not being read on this node")
        return flows

    def _flows(self, query):
        flows = self._flow_log()
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(params) - FLOW_PARAMS)
        if unknown:
            raise ApiError(400, f"unknown flows parameter(s): {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(FLOW_PARAMS))})")
        try:
            since = float(params["since"]) if params.get("since") else None
            limit = int(params["limit"]) if params.get("limit") else None
            wanted = FlowFilter(params.get("verdict") or None, params.get("from") or None,
                                params.get("to") or None, since)
        except ValueError as exc:
            raise ApiError(400, f"bad flows parameter: {exc}") from None
        if _flag(params.get("follow")):
            with_history = _flag(params.get("history"))
            return 200, JsonLines(lambda gone: flows.follow(wanted, gone, with_history=with_history))
        return 200, {"flows": flows.recent(wanted, limit)}

    def _flow_limit(self, body):
        try:
            request = json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError(400, f"limit request is not JSON: {exc}") from None
        if not isinstance(request, dict) or not {"rate", "burst"} <= set(request) \
                or set(request) - {"rate", "burst", "enabled"}:
            raise ApiError(400, 'limit request must be {"rate": N, "burst": N, "enabled": true|false}')
        try:
            self.agent.set_flow_limit(request["rate"], request["burst"], request.get("enabled", True))
        except NodeError as exc:
            raise ApiError(400, str(exc)) from None
        return self._flow_log().status()["limit"]

    def _policy(self, method, body, headers):
        _allow(method, "GET", "PUT", "DELETE")
        if method == "GET":
            return 200, self.agent.show_policy()
        if method == "DELETE":
            return 200, self.agent.clear_policy()
        text, source = _policy_body(body, headers)
        unless = _entity_tags(_header(headers, IF_NONE_MATCH))
        try:
            result = self.agent.apply_policy(text, source=source, unless=unless)
        except PolicyError as exc:
            raise ApiError(400, str(exc)) from None
        if result.get("unchanged"):
            raise ApiError(412, f"precondition failed: the agent already holds policy {result['digest']}")
        return 200, result

    def _staged(self, method, body, headers):
        _allow(method, "GET", "PUT", "DELETE")
        staging = self.agent.staging
        if method == "GET":
            return 200, staging.show()
        if method == "DELETE":
            return 200, staging.discard()
        text, source = _policy_body(body, headers)
        try:
            return 200, staging.stage(text, source=source)
        except PolicyError as exc:
            raise ApiError(400, str(exc)) from None

    def _distribution(self, method, body):
        _allow(method, "GET", "PUT", "DELETE")
        distribution = getattr(self.agent, "distribution", None)
        if distribution is None:
            raise ApiError(404, "this agent does not watch ZooKeeper (started without one)")
        if method == "GET":
            return 200, distribution.show()
        if method == "DELETE":
            return 200, distribution.forget()
        try:
            return 200, distribution.put(json.loads(body or b"null"))
        except ValueError as exc:  # never echoes the body: it holds the secret
            raise ApiError(400, f"bad distribution config: {str(exc).splitlines()[0][:200]}") from None

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
            request["ip"], request["group"], ifname=request.get("ifname"), netns=request.get("netns"),
            allow_uplink=request.get("allow_uplink", False),
        )
        return 201, endpoint


def _policy_body(body, headers):
    """(text, source) of a request carrying a policy."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"policy is not UTF-8 text (byte {exc.start})") from None
    # Printable and short: it ends up in error messages and the log.
    source = "".join(c for c in (_header(headers, SOURCE_HEADER) or "") if c.isprintable())[:200]
    return text, source or "<request>"


FLOW_PARAMS = {"follow", "history", "verdict", "from", "to", "since", "limit"}


def _flag(value):
    return (value or "").lower() in ("1", "true", "yes")


def _allow(method, *allowed):
    if method not in allowed:
        raise ApiError(405, f"method {method} not allowed here (allowed: {', '.join(allowed)})")


def _entity_tags(value):
    """The tags of an If-None-Match value ('"a", W/"b"' -> {"a", "b"}; "*" stays "*"), or None."""
    if value is None:
        return None
    tags = set()
    for item in value.split(","):
        item = item.strip()
        if item.startswith("W/"):
            item = item[2:]
        if len(item) >= 2 and item[0] == item[-1] == '"':
            item = item[1:-1]
        if item:
            tags.add(item)
    return frozenset(tags) or None


def _header(headers, name):
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None

"""Emulated Neutron (Networking API v2.0): networks and quota details, as pre-flight uses them.

Follows the Networking API reference (docs.openstack.org/api-ref/network/v2/):
- GET / lists versions; GET /v2.0 the resources;
- networks: GET /v2.0/networks with attribute filters (`name`, `router:external`, `id`),
  GET /v2.0/networks/{id}, POST /v2.0/networks (`router:external` needs admin: 403);
- quotas: GET /v2.0/quotas/{project_id}/details -> per resource `limit`, `used`, `reserved`
  (-1 is unlimited); PUT /v2.0/quotas/{project_id} (admin only) sets limits.
Errors are `{"NeutronError": {"type": ..., "message": ..., "detail": ""}}` as Neutron writes them.
"""

import uuid

from emulators.base import HTTPError, Service

TRUE_VALUES = ("true", "True", "1")


class Neutron(Service):
    name = "network"

    def __init__(self, validator, base_url):
        super().__init__(validator)
        self.base_url = base_url
        self.networks = {}
        self.default_quota = {"network": 100, "subnet": 100, "router": 10, "floatingip": 50,
                              "port": 500, "security_group": 10, "security_group_rule": 100}
        self.quota = {}  # project -> {resource: limit}
        self.usage = {}  # project -> {resource: used}
        self.route("GET", "", self.versions, auth=False)
        self.route("GET", "/v2.0", self.resources)
        self.route("GET", r"/v2.0/networks(\.json)?", self.list_networks)
        self.route("POST", r"/v2.0/networks(\.json)?", self.create_network)
        self.route("GET", r"/v2.0/networks/(?P<id>[^/.]+)(\.json)?", self.get_network)
        self.route("GET", r"/v2.0/quotas/(?P<project>[^/.]+)/details(\.json)?", self.quota_details)
        self.route("PUT", r"/v2.0/quotas/(?P<project>[^/.]+)(\.json)?", self.update_quota)

    def error_body(self, status, message, kind):
        return {"NeutronError": {"type": kind or {404: "NotFound", 403: "Forbidden", 409: "Conflict"}.get(
            status, "BadRequest"), "message": message, "detail": ""}}

    def versions(self, request):
        return 200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                   "links": [{"rel": "self", "href": self.base_url + "/v2.0/"}]}]}

    def resources(self, request):
        return 200, {"resources": [{"name": n, "collection": n + "s", "links": []}
                                   for n in ("network", "quota")]}

    def _visible(self, request, net):
        return request.is_admin or net["shared"] or net["router:external"] or \
            net["project_id"] == request.project_id

    def list_networks(self, request):
        nets = [n for n in self.networks.values() if self._visible(request, n)]
        for field in ("name", "id", "router:external", "shared", "status"):
            wanted = request.query.get(field)
            if wanted:
                def matches(net, field=field, wanted=wanted):
                    value = net[field]
                    if isinstance(value, bool):
                        return value == (wanted[0] in TRUE_VALUES)
                    return str(value) in wanted
                nets = [n for n in nets if matches(n)]
        return 200, {"networks": nets}

    def get_network(self, request):
        net = self.networks.get(request.params["id"])
        if net is None or not self._visible(request, net):
            raise HTTPError(404, f"Network {request.params['id']} could not be found.", "NetworkNotFound")
        return 200, {"network": net}

    def create_network(self, request):
        body = request.body.get("network")
        if not isinstance(body, dict):
            raise HTTPError(400, "Resource body required", "HTTPBadRequest")
        external = bool(body.get("router:external", False))
        if external and not request.is_admin:
            raise HTTPError(403, "(rule:create_network and rule:create_network:router:external) "
                                 "is disallowed by policy", "PolicyNotAuthorized")
        net = {"id": str(uuid.uuid4()), "name": body.get("name", ""), "router:external": external,
               "shared": bool(body.get("shared", False)), "status": "ACTIVE", "admin_state_up": True,
               "subnets": [], "project_id": request.project_id, "tenant_id": request.project_id,
               "mtu": 1500, "tags": []}
        self.networks[net["id"]] = net
        return 201, {"network": net}

    def quota_details(self, request):
        project = request.params["project"]
        if project != request.project_id and not request.is_admin:
            raise HTTPError(403, "Non-admin is not authorized to access quotas for another project",
                            "Forbidden")
        limits = {**self.default_quota, **self.quota.get(project, {})}
        used = self.usage.get(project, {})
        return 200, {"quota": {name: {"limit": limit, "used": used.get(name, 0), "reserved": 0}
                               for name, limit in limits.items()}}

    def update_quota(self, request):
        if not request.is_admin:
            raise HTTPError(403, "rule:update_quota is disallowed by policy", "PolicyNotAuthorized")
        body = request.body.get("quota")
        if not isinstance(body, dict):
            raise HTTPError(400, "Resource body required", "HTTPBadRequest")
        unknown = set(body) - set(self.default_quota)
        if unknown:
            names = ", ".join(sorted(unknown))
            raise HTTPError(400, f"Unrecognized attribute(s) '{names}'", "HTTPBadRequest")
        project = request.params["project"]
        self.quota.setdefault(project, {}).update({k: int(v) for k, v in body.items()})
        return 200, {"quota": {**self.default_quota, **self.quota[project]}}

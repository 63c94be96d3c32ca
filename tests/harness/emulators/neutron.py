"""Emulated Neutron (Networking API v2.0): networks and quota details, as pre-flight uses them.

Follows the Networking API reference (docs.openstack.org/api-ref/network/v2/):
- GET / lists versions; GET /v2.0 the resources;
- networks: GET /v2.0/networks with attribute filters (`name`, `router:external`, `id`),
  GET /v2.0/networks/{id}, POST /v2.0/networks (`router:external` needs admin: 403);
- quotas: GET /v2.0/quotas/{project_id}/details -> per resource `limit`, `used`, `reserved`
  (-1 is unlimited); PUT /v2.0/quotas/{project_id} (admin only) sets limits.
- the resources Heat's OS::Neutron::* types make for a bay (the production templates with
  environments/openstack.yaml): subnets (addresses from `allocation_pools`, gateway the
  first host), routers (`external_gateway_info`, PUT add/remove_router_interface), security
  groups with their rules (two default egress rules, as Neutron makes them), ports (fixed IPs
  allocated from the subnet, `security_groups`, `allowed_address_pairs`, status DOWN until
  Nova binds them, then ACTIVE), floating IPs (from the external network's subnet, associated
  to a port's fixed IP), GET /v2.0/extensions. Filters on list calls are attribute equality;
  `fields` is honoured.
Errors are `{"NeutronError": {"type": ..., "message": ..., "detail": ""}}` as Neutron writes them.

With a `fabric` (emulators/fabric.py, set by the VM tier's tests) the resources also exist on
the machine: a bridge per network in the tier's namespace, router gateways on them, floating
IPs NATed to their ports; ports of servers are the taps their VMs use. Security groups and
address pairs are carried as data (the tests read them), not enforced.
"""

import ipaddress
import uuid

from harness.emulators.base import HTTPError, Service

TRUE_VALUES = ("true", "True", "1")


def _int_or_none(value):
    return None if value is None else int(value)  # Heat sends port ranges as strings


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
        self.route("DELETE", r"/v2.0/networks/(?P<id>[^/.]+)(\.json)?", self.delete_network)
        self.subnets, self.routers, self.ports, self.floatingips = {}, {}, {}, {}
        self.security_groups, self.security_group_rules = {}, {}
        self.fabric = None  # emulators/fabric.py Fabric: the resources on the machine
        for kind in ("subnets", "routers", "ports", "floatingips", "security-groups",
                     "security-group-rules"):
            collection = kind.replace("-", "_")
            self.route("GET", rf"/v2.0/{kind}(\.json)?",
                       lambda r, c=collection: self._list(r, c))
            self.route("POST", rf"/v2.0/{kind}(\.json)?", getattr(self, f"create_{collection}"))
            self.route("GET", rf"/v2.0/{kind}/(?P<id>[^/.]+)(\.json)?",
                       lambda r, c=collection: self._show(r, c))
            self.route("PUT", rf"/v2.0/{kind}/(?P<id>[^/.]+)(\.json)?",
                       lambda r, c=collection: self._update(r, c))
            self.route("DELETE", rf"/v2.0/{kind}/(?P<id>[^/.]+)(\.json)?",
                       getattr(self, f"delete_{collection}"))
        self.route("PUT", r"/v2.0/routers/(?P<id>[^/.]+)/add_router_interface(\.json)?",
                   self.add_router_interface)
        self.route("PUT", r"/v2.0/routers/(?P<id>[^/.]+)/remove_router_interface(\.json)?",
                   self.remove_router_interface)
        self.route("GET", r"/v2.0/extensions(\.json)?", self.extensions)
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

    EXTENSIONS = ("security-group", "router", "external-net", "allowed-address-pairs", "port-security",
                  "binding", "quotas", "quota_details", "ext-gw-mode")

    def extensions(self, request):
        return 200, {"extensions": [{"alias": a, "name": a, "description": "", "updated": "",
                                     "links": []} for a in self.EXTENSIONS]}

    # generic list/show/update ------------------------------------------------------------
    SINGULAR = {"subnets": "subnet", "routers": "router", "ports": "port", "floatingips": "floatingip",
                "security_groups": "security_group", "security_group_rules": "security_group_rule",
                "networks": "network"}
    UPDATABLE = {"name", "description", "admin_state_up", "security_groups", "allowed_address_pairs",
                 "port_id", "fixed_ip_address", "dns_nameservers", "external_gateway_info"}

    def _store(self, collection):
        return getattr(self, collection)

    def _fields(self, request, item):
        fields = request.query.get("fields")
        return {k: v for k, v in item.items() if k in fields} if fields else item

    def _list(self, request, collection):
        items = [i for i in self._store(collection).values()
                 if request.is_admin or i.get("project_id") in (request.project_id, None)
                 or i.get("router:external") or i.get("shared")]
        for field, wanted in request.query.items():
            if field == "fields":
                continue
            def matches(item, field=field, wanted=wanted):
                value = item.get(field)
                if isinstance(value, bool):
                    return value == (wanted[0] in TRUE_VALUES)
                if isinstance(value, list):
                    return any(str(v) in wanted for v in value)
                return str(value) in wanted
            items = [i for i in items if matches(i)]
        return 200, {collection: [self._fields(request, i) for i in items]}

    def _get(self, request, collection):
        item = self._store(collection).get(request.params["id"])
        if item is None or not (request.is_admin or item.get("project_id") == request.project_id
                                or item.get("router:external")):
            kind = self.SINGULAR[collection]
            raise HTTPError(404, f"{kind.replace('_', ' ').title()} {request.params['id']} could not be "
                                 "found.",
                            kind.title().replace("_", "") + "NotFound")
        return item

    def _show(self, request, collection):
        return 200, {self.SINGULAR[collection]: self._fields(request, self._get(request, collection))}

    def _update(self, request, collection):
        item = self._get(request, collection)
        body = request.body.get(self.SINGULAR[collection]) or {}
        unknown = set(body) - self.UPDATABLE
        if unknown:
            raise HTTPError(400, f"Cannot update read-only attribute(s) {sorted(unknown)}", "HTTPBadRequest")
        with self.lock:
            item.update(body)
            if collection == "floatingips":
                self._associate(item)
        return 200, {self.SINGULAR[collection]: item}

    def _new(self, request, body, **fields):
        return {"id": str(uuid.uuid4()), "name": body.get("name", ""),
                "description": body.get("description", ""),
                "project_id": request.project_id, "tenant_id": request.project_id, "tags": [],
                "admin_state_up": body.get("admin_state_up", True), **fields}

    def _body(self, request, kind):
        body = request.body.get(kind)
        if not isinstance(body, dict):
            raise HTTPError(400, "Resource body required", "HTTPBadRequest")
        return body

    def _network(self, request, network_id, field="network_id"):
        net = self.networks.get(network_id or "")
        if net is None or not self._visible(request, net):
            raise HTTPError(404, f"Network {network_id} could not be found.", "NetworkNotFound")
        return net

    def delete_network(self, request):
        net = self.networks.get(request.params["id"])
        if net is None or not self._visible(request, net):
            raise HTTPError(404, f"Network {request.params['id']} could not be found.", "NetworkNotFound")
        if any(p["network_id"] == net["id"] for p in self.ports.values()):
            raise HTTPError(409, f"Unable to complete operation on network {net['id']}. There are one or "
                                 "more ports still in use on the network.", "NetworkInUse")
        with self.lock:
            for subnet_id in list(net["subnets"]):
                self.subnets.pop(subnet_id, None)
            self.networks.pop(net["id"])
        if self.fabric is not None:
            self.fabric.network_deleted(net)
        return 204, None

    # subnets -------------------------------------------------------------------------------
    def create_subnets(self, request):
        body = self._body(request, "subnet")
        net = self._network(request, body.get("network_id"))
        try:
            cidr = ipaddress.ip_network(body.get("cidr", ""), strict=True)
        except ValueError:
            raise HTTPError(400, f"Invalid input for cidr. Reason: '{body.get('cidr')}' is not a valid "
                                 "IP subnet.", "HTTPBadRequest") from None
        hosts = list(cidr.hosts())
        gateway = body.get("gateway_ip", str(hosts[0]))
        pools = body.get("allocation_pools") or [{"start": str(hosts[1]), "end": str(hosts[-1])}]
        subnet = self._new(request, body, network_id=net["id"], cidr=str(cidr), ip_version=cidr.version,
                           gateway_ip=gateway, allocation_pools=pools,
                           enable_dhcp=body.get("enable_dhcp", True),
                           dns_nameservers=body.get("dns_nameservers", []), host_routes=[],
                           subnetpool_id=None, ipv6_ra_mode=None, ipv6_address_mode=None)
        with self.lock:
            self.subnets[subnet["id"]] = subnet
            net["subnets"].append(subnet["id"])
        return 201, {"subnet": subnet}

    def delete_subnets(self, request):
        subnet = self._get(request, "subnets")
        if any(ip["subnet_id"] == subnet["id"] for p in self.ports.values() for ip in p["fixed_ips"]):
            raise HTTPError(409, f"Unable to complete operation on subnet {subnet['id']}: One or more "
                                 "ports have an IP allocation from this subnet.", "SubnetInUse")
        with self.lock:
            self.subnets.pop(subnet["id"])
            net = self.networks.get(subnet["network_id"])
            if net is not None and subnet["id"] in net["subnets"]:
                net["subnets"].remove(subnet["id"])
        return 204, None

    def _allocate(self, subnet, wanted=None):
        used = {ip["ip_address"] for p in self.ports.values() for ip in p["fixed_ips"]} | \
            {f["floating_ip_address"] for f in self.floatingips.values()} | {subnet["gateway_ip"]}
        if wanted:
            if wanted in used:
                raise HTTPError(409, f"IP address {wanted} already allocated in subnet {subnet['id']}",
                                "IpAddressAlreadyAllocated")
            return wanted
        for pool in subnet["allocation_pools"]:
            address = ipaddress.ip_address(pool["start"])
            while address <= ipaddress.ip_address(pool["end"]):
                if str(address) not in used:
                    return str(address)
                address += 1
        raise HTTPError(409, f"No more IP addresses available on network {subnet['network_id']}.",
                        "IpAddressGenerationFailure")

    # routers -------------------------------------------------------------------------------
    def create_routers(self, request):
        body = self._body(request, "router")
        gateway = body.get("external_gateway_info") or None
        if gateway:
            ext = self._network(request, gateway.get("network_id"))
            if not ext["router:external"]:
                raise HTTPError(400, f"Bad router request: Network {ext['id']} is not an external network",
                                "BadRequest")
            gateway = {"network_id": ext["id"], "enable_snat": gateway.get("enable_snat", True),
                       "external_fixed_ips": []}
        router = self._new(request, body, status="ACTIVE", external_gateway_info=gateway, routes=[],
                           interfaces=[])
        with self.lock:
            self.routers[router["id"]] = router
        return 201, {"router": {k: v for k, v in router.items() if k != "interfaces"}}

    def delete_routers(self, request):
        router = self._get(request, "routers")
        if router["interfaces"]:
            raise HTTPError(409, f"Router {router['id']} still has ports", "RouterInUse")
        with self.lock:
            self.routers.pop(router["id"])
        return 204, None

    def add_router_interface(self, request):
        router = self._get(request, "routers")
        subnet = self.subnets.get(request.body.get("subnet_id") or "")
        if subnet is None:
            raise HTTPError(404, f"Subnet {request.body.get('subnet_id')} could not be found.",
                            "SubnetNotFound")
        port = self._new(request, {}, network_id=subnet["network_id"], device_id=router["id"],
                         device_owner="network:router_interface", status="ACTIVE",
                         mac_address=self._mac(), security_groups=[], allowed_address_pairs=[],
                         fixed_ips=[{"subnet_id": subnet["id"], "ip_address": subnet["gateway_ip"]}],
                         port_security_enabled=False)
        with self.lock:
            self.ports[port["id"]] = port
            router["interfaces"].append(port["id"])
        if self.fabric is not None:
            self.fabric.router_interface_added(self.networks[subnet["network_id"]], subnet)
        return 200, {"id": router["id"], "subnet_id": subnet["id"], "subnet_ids": [subnet["id"]],
                     "port_id": port["id"], "network_id": subnet["network_id"],
                     "tenant_id": router["project_id"], "project_id": router["project_id"]}

    def remove_router_interface(self, request):
        router = self._get(request, "routers")
        subnet_id = request.body.get("subnet_id")
        for port_id in list(router["interfaces"]):
            port = self.ports.get(port_id)
            if port and any(ip["subnet_id"] == subnet_id for ip in port["fixed_ips"]):
                with self.lock:
                    router["interfaces"].remove(port_id)
                    self.ports.pop(port_id)
                if self.fabric is not None:
                    self.fabric.router_interface_removed(self.subnets.get(subnet_id))
                return 200, {"id": router["id"], "subnet_id": subnet_id, "port_id": port_id}
        raise HTTPError(404, f"Router {router['id']} does not have an interface with subnet {subnet_id}",
                        "RouterInterfaceNotFoundForSubnet")

    # security groups -----------------------------------------------------------------------
    def create_security_groups(self, request):
        body = self._body(request, "security_group")
        group = self._new(request, body, stateful=True, security_group_rules=[])
        with self.lock:
            self.security_groups[group["id"]] = group
        for ethertype in ("IPv4", "IPv6"):  # what Neutron gives every new group
            self._add_rule(request, {"security_group_id": group["id"], "direction": "egress",
                                     "ethertype": ethertype})
        return 201, {"security_group": group}

    def _add_rule(self, request, body):
        group = self.security_groups.get(body.get("security_group_id") or "")
        if group is None:
            raise HTTPError(404, f"Security group {body.get('security_group_id')} does not exist",
                            "SecurityGroupNotFound")
        if body.get("direction") not in ("ingress", "egress"):
            raise HTTPError(400, "Invalid input for direction", "HTTPBadRequest")
        rule = {"id": str(uuid.uuid4()), "security_group_id": group["id"], "direction": body["direction"],
                "ethertype": body.get("ethertype", "IPv4"), "protocol": body.get("protocol"),
                "port_range_min": _int_or_none(body.get("port_range_min")),
                "port_range_max": _int_or_none(body.get("port_range_max")),
                "remote_ip_prefix": body.get("remote_ip_prefix"),
                "remote_group_id": body.get("remote_group_id"),
                "description": body.get("description", ""), "project_id": group["project_id"],
                "tenant_id": group["project_id"]}
        with self.lock:
            self.security_group_rules[rule["id"]] = rule
            group["security_group_rules"].append(rule)
        return rule

    def create_security_group_rules(self, request):
        bulk = request.body.get("security_group_rules")  # Heat creates a group's rules in one call
        if isinstance(bulk, list):
            return 201, {"security_group_rules": [self._add_rule(request, rule) for rule in bulk]}
        rule = self._add_rule(request, self._body(request, "security_group_rule"))
        return 201, {"security_group_rule": rule}

    def delete_security_group_rules(self, request):
        rule = self._get(request, "security_group_rules")
        with self.lock:
            self.security_group_rules.pop(rule["id"])
            group = self.security_groups.get(rule["security_group_id"])
            if group is not None:
                group["security_group_rules"] = [r for r in group["security_group_rules"]
                                                 if r["id"] != rule["id"]]
        return 204, None

    def delete_security_groups(self, request):
        group = self._get(request, "security_groups")
        if any(group["id"] in p["security_groups"] for p in self.ports.values()):
            raise HTTPError(409, f"Security Group {group['id']} in use.", "SecurityGroupInUse")
        with self.lock:
            for rule in group["security_group_rules"]:
                self.security_group_rules.pop(rule["id"], None)
            self.security_groups.pop(group["id"])
        return 204, None

    # ports ---------------------------------------------------------------------------------
    @staticmethod
    def _mac():
        return "fa:16:3e:" + ":".join(f"{b:02x}" for b in uuid.uuid4().bytes[:3])

    def create_ports(self, request):
        body = self._body(request, "port")
        net = self._network(request, body.get("network_id"))
        fixed = []
        for wanted in body.get("fixed_ips") or [{"subnet_id": net["subnets"][0] if net["subnets"] else None}]:
            subnet = self.subnets.get(wanted.get("subnet_id") or "")
            if subnet is None or subnet["network_id"] != net["id"]:
                raise HTTPError(400, f"Invalid input for operation: subnet {wanted.get('subnet_id')} is not "
                                     f"on network {net['id']}.", "InvalidInput")
            address = self._allocate(subnet, wanted.get("ip_address"))
            fixed.append({"subnet_id": subnet["id"], "ip_address": address})
        groups = body.get("security_groups")
        if groups is None:
            groups = []
        for group_id in groups:
            if group_id not in self.security_groups:
                raise HTTPError(404, f"Security group {group_id} does not exist", "SecurityGroupNotFound")
        port = self._new(request, body, network_id=net["id"], fixed_ips=fixed, mac_address=self._mac(),
                         security_groups=list(groups),
                         allowed_address_pairs=body.get("allowed_address_pairs") or [],
                         device_id=body.get("device_id", ""), device_owner=body.get("device_owner", ""),
                         status="DOWN", port_security_enabled=body.get("port_security_enabled", True),
                         **{"binding:vnic_type": "normal", "binding:host_id": "",
                            "binding:vif_type": "unbound"})
        with self.lock:
            self.ports[port["id"]] = port
        return 201, {"port": port}

    def delete_ports(self, request):
        port = self._get(request, "ports")
        with self.lock:
            self.ports.pop(port["id"])
            for fip in self.floatingips.values():
                if fip["port_id"] == port["id"]:
                    fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
                    if self.fabric is not None:
                        self.fabric.floating_ip_changed(fip)
        return 204, None

    def bind_port(self, port_id, server_id, project_id):
        """Nova plugs a server into a port: bound, ACTIVE. Returns the port and its subnets."""
        with self.lock:
            port = self.ports.get(port_id)
            if port is None or port["project_id"] != project_id:
                raise HTTPError(400, f"Port {port_id} could not be found.")
            if port["device_id"] and port["device_id"] != server_id:
                raise HTTPError(409, f"Port {port_id} is still in use.")
            port.update(device_id=server_id, device_owner="compute:nova", status="ACTIVE",
                        **{"binding:host_id": "bayctl-vm-tier", "binding:vif_type": "tap"})
            return port, [self.subnets[ip["subnet_id"]] for ip in port["fixed_ips"]], \
                self.networks[port["network_id"]]

    def unbind_port(self, port_id):
        with self.lock:
            port = self.ports.get(port_id)
            if port is not None:
                port.update(device_id="", device_owner="", status="DOWN",
                            **{"binding:host_id": "", "binding:vif_type": "unbound"})

    # floating IPs --------------------------------------------------------------------------
    def create_floatingips(self, request):
        body = self._body(request, "floatingip")
        ext = self._network(request, body.get("floating_network_id"))
        if not ext["router:external"] or not ext["subnets"]:
            raise HTTPError(400, f"Bad floatingip request: Network {ext['id']} is not a valid external "
                                 "network.", "BadRequest")
        address = self._allocate(self.subnets[ext["subnets"][0]], body.get("floating_ip_address"))
        fip = self._new(request, body, floating_network_id=ext["id"], floating_ip_address=address,
                        port_id=body.get("port_id"), fixed_ip_address=body.get("fixed_ip_address"),
                        router_id=None, status="DOWN")
        fip.pop("name")
        with self.lock:
            self.floatingips[fip["id"]] = fip
            self._associate(fip)
        return 201, {"floatingip": fip}

    def _associate(self, fip):
        port = self.ports.get(fip["port_id"] or "")
        if fip["port_id"] and port is None:
            raise HTTPError(404, f"Port {fip['port_id']} could not be found.", "PortNotFound")
        if port is not None and not fip["fixed_ip_address"]:
            fip["fixed_ip_address"] = port["fixed_ips"][0]["ip_address"]
        fip["status"] = "ACTIVE" if port is not None else "DOWN"
        fip["router_id"] = next((r["id"] for r in self.routers.values() if port is not None and any(
            self.ports.get(i, {}).get("network_id") == port["network_id"] for i in r["interfaces"])), None)
        if self.fabric is not None:
            self.fabric.floating_ip_changed(fip)

    def delete_floatingips(self, request):
        fip = self._get(request, "floatingips")
        with self.lock:
            self.floatingips.pop(fip["id"])
        if self.fabric is not None:
            self.fabric.floating_ip_changed(dict(fip, port_id=None, fixed_ip_address=None))
        return 204, None

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

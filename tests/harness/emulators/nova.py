"""Emulated Nova (Compute API v2.1): the subset bayctl's pre-flight and Magnum's validation use.

Follows the Compute API reference (docs.openstack.org/api-ref/compute/):
- version document at GET /v2.1/ with `version`/`min_version` (microversions 2.1-2.96);
- microversions: request header `OpenStack-API-Version: compute X.Y` (or the legacy
  `X-OpenStack-Nova-API-Version`); the answer echoes the version used in both headers plus
  `Vary`; a version outside the range is 406 Not Acceptable;
- keypairs: GET/POST /os-keypairs, GET/DELETE /os-keypairs/{name} (404 `itemNotFound`,
  409 `conflictingRequest` for a duplicate name);
- flavors: GET /flavors, /flavors/detail, /flavors/{id}; POST /flavors (admin only, 403);
- quotas: GET/PUT /os-quota-sets/{project_id} (`quota_set`: instances, cores, ram; PUT admin only);
- limits: GET /limits -> `absolute` maxTotalInstances/totalInstancesUsed, maxTotalCores/
  totalCoresUsed, maxTotalRAMSize/totalRAMUsed (-1 is unlimited).
- servers, the part Heat's OS::Nova::Server (novaclient at the negotiated microversion) uses to
  create, watch and delete a server, and that bayctl's diagnosis reads the fault from:
  POST /servers -> 202 `{"server": {id, links, OS-DCF:diskConfig, security_groups, adminPass}}`
  with a Location header; `flavorRef` must name a flavor and `imageRef` an image of the real
  Glance (else 400); from 2.37 on `networks` is required, and only "none" is emulated (there
  is no Neutron port behind a server here). GET /servers/{id} -> status BUILD (vm_state
  building) for `build_seconds`, then ERROR with a `fault` {code, message, details, created}
  when the flavor's name ends in "no-host" (Nova's NoValidHost; `details` only for admins, as
  Nova shows a 500 fault), else ACTIVE. `flavor` is {id, links} before 2.47 and the embedded
  flavor from 2.47 on. GET /servers, /servers/detail; DELETE /servers/{id} -> 204;
  GET /servers/{id}/os-interface -> `interfaceAttachments` (none, as the server has no port).
  A server of another project is 404 to a non-admin, as in Nova.
Error bodies are `{"<kind>": {"code": N, "message": "..."}}` as Nova writes them.
The bay templates still use stand-ins for their servers (no Neutron ports or floating IPs here).

With a `launcher` (emulators/vms.py QemuLauncher, set by the VM tier's tests) a server is a
real qemu VM: image from Glance, user data and key on a config drive; BUILD until qemu runs,
then ACTIVE, or ERROR with the build's fault; DELETE kills it.
"""

import base64
import datetime
import time
import uuid

from harness.emulators.base import HTTPError, Service

MIN_VERSION, MAX_VERSION = (2, 1), (2, 96)
NO_HOST_SUFFIX = "no-host"  # a flavor no compute host can take: its servers end in ERROR
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."
ERROR_KINDS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               406: "notAcceptable", 409: "conflictingRequest", 405: "notAllowed"}


def _parse_version(text):
    major, minor = text.strip().split(".")
    return int(major), int(minor)


class Nova(Service):
    name = "compute"

    def __init__(self, validator, base_url, build_seconds=1.0):
        super().__init__(validator)
        self.base_url = base_url
        self.build_seconds = build_seconds
        self.launcher = None  # a QemuLauncher: servers become VMs (emulators/vms.py)
        self.neutron = None  # the Neutron emulator, whose ports servers are bound to
        self.servers = {}  # id -> server record (the API view is made per request)
        self.keypairs = {}  # (user_id, name) -> keypair
        self.flavors = {}  # id -> flavor
        # Quota as the limits API reports it, per project; tests lower it to exercise pre-flight.
        self.quota = {}
        self.default_quota = {"maxTotalInstances": 10, "maxTotalCores": 20, "maxTotalRAMSize": 51200}
        self.usage = {}  # project -> {"totalInstancesUsed":.., ...}
        self.route("GET", "", self.root, auth=False)
        self.route("GET", "/v2.1", self.version, auth=False)
        self.route("GET", "/v2.1/os-keypairs", self.list_keypairs)
        self.route("POST", "/v2.1/os-keypairs", self.create_keypair)
        self.route("GET", "/v2.1/os-keypairs/(?P<name>[^/]+)", self.get_keypair)
        self.route("DELETE", "/v2.1/os-keypairs/(?P<name>[^/]+)", self.delete_keypair)
        self.route("GET", "/v2.1/flavors", self.list_flavors)
        self.route("GET", "/v2.1/flavors/detail", self.list_flavors)
        self.route("POST", "/v2.1/flavors", self.create_flavor)
        self.route("GET", "/v2.1/flavors/(?P<id>[^/]+)", self.get_flavor)
        self.route("GET", "/v2.1/limits", self.limits)
        self.route("DELETE", "/v2.1/flavors/(?P<id>[^/]+)", self.delete_flavor)
        # Server groups (Magnum's templates make one per role for scheduler hints; one host
        # here, so a policy is only recorded).
        self.server_groups = {}  # id -> group
        self.route("GET", "/v2.1/os-server-groups", self.list_server_groups)
        self.route("POST", "/v2.1/os-server-groups", self.create_server_group)
        self.route("GET", "/v2.1/os-server-groups/(?P<id>[^/]+)", self.get_server_group)
        self.route("DELETE", "/v2.1/os-server-groups/(?P<id>[^/]+)", self.delete_server_group)
        self.route("GET", "/v2.1/servers", self.list_servers)
        self.route("GET", "/v2.1/servers/detail", self.list_servers_detail)
        self.route("POST", "/v2.1/servers", self.create_server)
        self.route("GET", "/v2.1/servers/(?P<id>[^/]+)", self.show_server)
        self.route("DELETE", "/v2.1/servers/(?P<id>[^/]+)", self.delete_server)
        self.route("GET", "/v2.1/servers/(?P<id>[^/]+)/os-interface", self.list_interfaces)
        self.route("GET", "/v2.1/os-quota-sets/(?P<project>[^/]+)", self.show_quota)
        self.route("PUT", "/v2.1/os-quota-sets/(?P<project>[^/]+)", self.update_quota)

    def error_body(self, status, message, kind):
        return {ERROR_KINDS.get(status, "computeFault"): {"code": status, "message": message}}

    def response_headers(self, request):
        version = self._requested_version(request)
        text = f"{version[0]}.{version[1]}"
        return [("OpenStack-API-Version", f"compute {text}"), ("X-OpenStack-Nova-API-Version", text),
                ("Vary", "OpenStack-API-Version, X-OpenStack-Nova-API-Version")]

    def _requested_version(self, request):
        header = request.headers.get("openstack-api-version", "")
        text = None
        if header.startswith("compute "):
            text = header.split(" ", 1)[1]
        elif request.headers.get("x-openstack-nova-api-version"):
            text = request.headers["x-openstack-nova-api-version"]
        if not text:
            return MIN_VERSION
        if text == "latest":
            return MAX_VERSION
        try:
            version = _parse_version(text)
        except ValueError:
            raise HTTPError(400, f"Invalid microversion {text!r}") from None
        if not MIN_VERSION <= version <= MAX_VERSION:
            raise HTTPError(406, f"Version {text} is not supported by the API. Minimum is 2.1 and maximum is "
                                 f"{MAX_VERSION[0]}.{MAX_VERSION[1]}.")
        return version

    def _version_doc(self):
        return {"id": "v2.1", "status": "CURRENT", "version": f"{MAX_VERSION[0]}.{MAX_VERSION[1]}",
                "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
                "links": [{"rel": "self", "href": self.base_url + "/v2.1/"}]}

    def root(self, request):
        return 200, {"versions": [self._version_doc()]}

    def version(self, request):
        return 200, {"version": self._version_doc()}

    # keypairs -------------------------------------------------------------------------
    def _user(self, request):
        return request.token["user"]["id"]

    def list_keypairs(self, request):
        mine = [kp for (user, _), kp in self.keypairs.items() if user == self._user(request)]
        return 200, {"keypairs": [{"keypair": kp} for kp in mine]}

    def create_keypair(self, request):
        body = request.body.get("keypair") or {}
        name = body.get("name")
        if not name:
            raise HTTPError(400, "Invalid input for field/attribute keypair. 'name' is a required property")
        key = (self._user(request), name)
        with self.lock:
            if key in self.keypairs:
                raise HTTPError(409, f"Key pair '{name}' already exists.")
            public_key = body.get("public_key") or "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulated emulated"
            kp = {"name": name, "public_key": public_key, "fingerprint": "00:" * 15 + "00",
                  "type": body.get("type", "ssh"), "user_id": self._user(request)}
            self.keypairs[key] = kp
        return 200, {"keypair": kp}

    def get_keypair(self, request):
        kp = self.keypairs.get((self._user(request), request.params["name"]))
        if kp is None:
            raise HTTPError(404, f"Keypair {request.params['name']} not found for user {self._user(request)}")
        return 200, {"keypair": kp}

    def delete_keypair(self, request):
        if self.keypairs.pop((self._user(request), request.params["name"]), None) is None:
            raise HTTPError(404, f"Keypair {request.params['name']} not found")
        return 202, None

    # server groups ---------------------------------------------------------------------
    def _server_group_view(self, request, group):
        view = {k: group[k] for k in ("id", "name", "members", "project_id", "user_id")}
        if self._requested_version(request) >= (2, 64):  # one `policy` and `rules` from 2.64 on
            view.update(policy=group["policy"], rules=group["rules"])
        else:
            view.update(policies=[group["policy"]], metadata={})
        return view

    def create_server_group(self, request):
        body = request.body.get("server_group") or {}
        policy = body.get("policy") or (body.get("policies") or [None])[0]
        if not body.get("name") or policy not in ("affinity", "anti-affinity", "soft-affinity",
                                                  "soft-anti-affinity"):
            raise HTTPError(400, "Invalid input for field/attribute server_group: a name and one policy "
                                 "of affinity, anti-affinity, soft-affinity, soft-anti-affinity")
        group = {"id": str(uuid.uuid4()), "name": body["name"], "policy": policy,
                 "rules": body.get("rules") or {},
                 "members": [], "project_id": request.project_id, "user_id": request.token["user"]["id"]}
        with self.lock:
            self.server_groups[group["id"]] = group
        return 200, {"server_group": self._server_group_view(request, group)}

    def _server_group(self, request):
        group = self.server_groups.get(request.params["id"])
        if group is None or (group["project_id"] != request.project_id and not request.is_admin):
            raise HTTPError(404, f"Server group {request.params['id']} could not be found.")
        return group

    def list_server_groups(self, request):
        mine = [g for g in self.server_groups.values() if g["project_id"] == request.project_id]
        return 200, {"server_groups": [self._server_group_view(request, g) for g in mine]}

    def get_server_group(self, request):
        return 200, {"server_group": self._server_group_view(request, self._server_group(request))}

    def delete_server_group(self, request):
        group = self._server_group(request)
        with self.lock:
            self.server_groups.pop(group["id"], None)
        return 204, None

    # flavors --------------------------------------------------------------------------
    def list_flavors(self, request):
        return 200, {"flavors": list(self.flavors.values())}

    def create_flavor(self, request):
        if not request.is_admin:
            raise HTTPError(403, "Policy doesn't allow os_compute_api:os-flavor-manage:create "
                                 "to be performed.")
        body = request.body.get("flavor") or {}
        for field in ("name", "ram", "vcpus", "disk"):
            if field not in body:
                raise HTTPError(400, f"Invalid input for field/attribute flavor. '{field}' "
                                     "is a required property")
        flavor = {"id": body.get("id") or str(uuid.uuid4()), "name": body["name"], "ram": int(body["ram"]),
                  "vcpus": int(body["vcpus"]), "disk": int(body["disk"]), "OS-FLV-EXT-DATA:ephemeral": 0,
                  "swap": 0, "rxtx_factor": 1.0, "os-flavor-access:is_public": True, "links": []}
        with self.lock:
            if any(f["name"] == flavor["name"] for f in self.flavors.values()):
                raise HTTPError(409, f"Flavor with name {flavor['name']} already exists.")
            self.flavors[flavor["id"]] = flavor
        return 200, {"flavor": flavor}

    def get_flavor(self, request):
        flavor = self.flavors.get(request.params["id"])
        if flavor is None:
            raise HTTPError(404, f"Flavor {request.params['id']} could not be found.")
        return 200, {"flavor": flavor}

    def delete_flavor(self, request):
        if not request.is_admin:
            raise HTTPError(403, "Policy doesn't allow os_compute_api:os-flavor-manage:delete "
                                 "to be performed.")
        if self.flavors.pop(request.params["id"], None) is None:
            raise HTTPError(404, f"Flavor {request.params['id']} could not be found.")
        return 202, None

    # servers --------------------------------------------------------------------------
    @staticmethod
    def _now():
        return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _links(self, kind, item_id):
        return [{"rel": "self", "href": f"{self.base_url}/v2.1/{kind}/{item_id}"},
                {"rel": "bookmark", "href": f"{self.base_url}/{kind}/{item_id}"}]

    def create_server(self, request):
        body = request.body.get("server")
        if not isinstance(body, dict):
            raise HTTPError(400, "Invalid input for field/attribute server. Value: None. "
                                 "None is not of type 'object'")
        for field in ("name", "flavorRef"):
            if not body.get(field):
                raise HTTPError(400, f"Invalid input for field/attribute server. '{field}' is a required "
                                     "property")
        version = self._requested_version(request)
        networks = body.get("networks")
        if version >= (2, 37) and networks is None:
            raise HTTPError(400, "Invalid input for field/attribute server. 'networks' is a required "
                                 "property")
        ports = []
        if networks not in (None, "none"):
            if not isinstance(networks, list) or \
                    not all(isinstance(n, dict) and n.get("port") for n in networks):
                raise HTTPError(400, "Only networks 'none' or existing ports ({'port': id}) are emulated")
            if self.launcher is None:
                raise HTTPError(400, "Servers on ports need the VM tier (a launcher): no VM would use them")
            ports = [n["port"] for n in networks]
        flavor = self.flavors.get(body["flavorRef"].rstrip("/").rsplit("/", 1)[-1])
        if flavor is None:
            raise HTTPError(400, f"Flavor {body['flavorRef']} could not be found.")
        image_id = (body.get("imageRef") or "").rstrip("/").rsplit("/", 1)[-1]
        if not image_id:  # boot from volume is not emulated
            raise HTTPError(400, "Invalid input for field/attribute server. 'imageRef' is a required "
                                 "property")
        self._check_image(request, image_id)
        now = self._now()
        server = {"id": str(uuid.uuid4()), "name": body["name"], "flavor": flavor, "image_id": image_id,
                  "key_name": body.get("key_name"), "metadata": body.get("metadata") or {},
                  "project_id": request.project_id, "user_id": request.token["user"]["id"],
                  "created": now, "updated": now, "started": time.monotonic(),
                  "security_groups": [{"name": g.get("name", "default")}
                                      for g in body.get("security_groups") or [{"name": "default"}]],
                  "disk_config": body.get("OS-DCF:diskConfig", "MANUAL"), "fault": None}
        server["ports"] = []
        if self.launcher is not None:
            server["ports"] = [self._bind(request, server, port_id) for port_id in ports]
            server["vm"] = self._launch(request, server, body)
        with self.lock:
            self.servers[server["id"]] = server
        request.extra_headers.append(("Location", f"{self.base_url}/v2.1/servers/{server['id']}"))
        return 202, {"server": {"id": server["id"], "links": self._links("servers", server["id"]),
                                "OS-DCF:diskConfig": server["disk_config"],
                                "security_groups": server["security_groups"],
                                "adminPass": uuid.uuid4().hex[:12]}}

    def _launch(self, request, server, body):
        """Hand the server to the launcher, with what nova-compute would put on its config drive."""
        user_data = body.get("user_data")
        if user_data is not None:
            try:
                user_data = base64.b64decode(user_data, validate=True)
            except ValueError:
                raise HTTPError(400, "Invalid input for field/attribute user_data. Value is not "
                                     "base64 encoded") from None
        keys = {}
        if server["key_name"]:
            keypair = self.keypairs.get((request.token["user"]["id"], server["key_name"]))
            if keypair is None:
                raise HTTPError(400, "Invalid key_name provided.")
            keys[keypair["name"]] = keypair["public_key"]
        return self.launcher.launch(server["id"], server["name"], glance_url=self._image_url(request),
                                    token=request.headers.get("x-auth-token", ""),
                                    image_id=server["image_id"], user_data=user_data, public_keys=keys,
                                    project_id=server["project_id"], memory_mb=server["flavor"]["ram"],
                                    ports=server["ports"])

    def _bind(self, request, server, port_id):
        """Bind a Neutron port to the server, as nova-compute does; what the VM's NIC needs."""
        port, subnets, network = self.neutron.bind_port(port_id, server["id"], request.project_id)
        subnet = subnets[0]
        return {"port_id": port["id"], "network_id": network["id"], "network_name": network["name"],
                "mac": port["mac_address"], "ip": port["fixed_ips"][0]["ip_address"], "cidr": subnet["cidr"],
                "gateway": subnet["gateway_ip"], "dns": subnet["dns_nameservers"]}

    @staticmethod
    def _image_url(request):
        urls = [e["url"] for svc in request.token.get("catalog", []) if svc.get("type") == "image"
                for e in svc.get("endpoints", []) if e.get("interface") == "public"]
        if not urls:
            raise HTTPError(500, "no image service in the catalog to fetch the image from")
        return urls[0].rstrip("/")

    @staticmethod
    def _check_image(request, image_id):
        """Ask the image service of the caller's catalog with the caller's token, as Nova does."""
        import requests

        urls = [e["url"] for svc in request.token.get("catalog", []) if svc.get("type") == "image"
                for e in svc.get("endpoints", []) if e.get("interface") == "public"]
        if not urls:  # no Glance to ask: take the image as given
            return
        try:
            resp = requests.get(f"{urls[0].rstrip('/')}/v2/images/{image_id}", timeout=30,
                                headers={"X-Auth-Token": request.headers.get("x-auth-token", "")})
        except requests.RequestException as e:
            raise HTTPError(500, f"Error contacting the image service: {type(e).__name__}") from None
        if resp.status_code == 404:
            raise HTTPError(400, f"Image {image_id} could not be found.")
        if resp.status_code != 200:
            raise HTTPError(500, f"The image service answered {resp.status_code} for image {image_id}")
        if resp.json().get("status") != "active":
            raise HTTPError(400, f"Image {image_id} is not active.")

    def _server(self, request):
        server = self.servers.get(request.params["id"])
        if server is None or not (request.is_admin or server["project_id"] == request.project_id):
            raise HTTPError(404, f"Instance {request.params['id']} could not be found.")
        return server

    def _status(self, server):
        """BUILD until the build time is over; then the scheduler's answer, once. A VM's
        status is its own: BUILD until qemu runs, ERROR with the build's fault."""
        vm = server.get("vm")
        if vm is not None:
            status = vm.status
            if status == "ERROR" and server["fault"] is None:
                server["fault"] = {"code": 500, "message": f"Build of instance {server['id']} aborted",
                                   "details": vm.fault, "created": self._now()}
            return status
        if server["fault"] is None and time.monotonic() - server["started"] < self.build_seconds:
            return "BUILD"
        with self.lock:
            if server["flavor"]["name"].endswith(NO_HOST_SUFFIX):
                if server["fault"] is None:
                    server["fault"] = {"code": 500, "message": NO_VALID_HOST, "created": self._now(),
                                       "details": "Traceback (most recent call last):\n  File "
                                                  "\"nova/conductor/manager.py\", in schedule_and_build_"
                                                  "instances\nnova.exception.NoValidHost: No valid host "
                                                  "was found. There are not enough hosts available.\n"}
                    server["updated"] = server["fault"]["created"]
                return "ERROR"
        return "ACTIVE"

    def _server_view(self, request, server):
        version = self._requested_version(request)
        status = self._status(server)
        flavor = server["flavor"]
        view = {
            "id": server["id"], "name": server["name"], "status": status, "tenant_id": server["project_id"],
            "user_id": server["user_id"], "metadata": server["metadata"], "key_name": server["key_name"],
            "created": server["created"], "updated": server["updated"], "addresses": self._addresses(server),
            "accessIPv4": "", "accessIPv6": "", "hostId": "" if status != "ACTIVE" else uuid.uuid5(
                uuid.NAMESPACE_URL, server["project_id"] + "emulated-host").hex,
            "image": {"id": server["image_id"], "links": self._links("images", server["image_id"])[1:]},
            "links": self._links("servers", server["id"]), "progress": 0 if status == "BUILD" else 100,
            "config_drive": "True" if server.get("vm") else "", "security_groups": server["security_groups"],
            "OS-DCF:diskConfig": server["disk_config"], "OS-EXT-AZ:availability_zone": "nova",
            "OS-EXT-STS:vm_state": {"BUILD": "building", "ERROR": "error", "ACTIVE": "active"}[status],
            "OS-EXT-STS:task_state": "scheduling" if status == "BUILD" else None,
            "OS-EXT-STS:power_state": 1 if status == "ACTIVE" else 0,
            "OS-SRV-USG:launched_at": server["updated"] if status == "ACTIVE" else None,
            "OS-SRV-USG:terminated_at": None, "os-extended-volumes:volumes_attached": [],
        }
        if version >= (2, 47):
            view["flavor"] = {"vcpus": flavor["vcpus"], "ram": flavor["ram"], "disk": flavor["disk"],
                              "ephemeral": flavor.get("OS-FLV-EXT-DATA:ephemeral", 0),
                              "swap": flavor.get("swap", 0), "original_name": flavor["name"],
                              "extra_specs": {}}
        else:
            view["flavor"] = {"id": flavor["id"], "links": self._links("flavors", flavor["id"])[1:]}
        if version >= (2, 9):
            view["locked"] = False
        if version >= (2, 26):
            view["tags"] = []
        if status == "ERROR" and server["fault"]:
            fault = dict(server["fault"])
            if fault["code"] == 500 and not request.is_admin:
                fault.pop("details")  # Nova shows a 500 fault's details to admins only
            view["fault"] = fault
        return view

    def _addresses(self, server):
        addresses = {}
        for port in server.get("ports", []):
            entries = addresses.setdefault(port["network_name"], [])
            entries.append({"addr": port["ip"], "version": 4, "OS-EXT-IPS:type": "fixed",
                            "OS-EXT-IPS-MAC:mac_addr": port["mac"]})
            for fip in self.neutron.floatingips.values() if self.neutron else ():
                if fip["port_id"] == port["port_id"]:
                    entries.append({"addr": fip["floating_ip_address"], "version": 4,
                                    "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": port["mac"]})
        return addresses

    def show_server(self, request):
        return 200, {"server": self._server_view(request, self._server(request))}

    def _visible_servers(self, request):
        return [s for s in list(self.servers.values())
                if request.is_admin and request.arg("all_tenants") or s["project_id"] == request.project_id]

    def list_servers(self, request):
        return 200, {"servers": [{"id": s["id"], "name": s["name"], "links": self._links("servers", s["id"])}
                                 for s in self._visible_servers(request)]}

    def list_servers_detail(self, request):
        return 200, {"servers": [self._server_view(request, s) for s in self._visible_servers(request)]}

    def delete_server(self, request):
        server = self._server(request)
        with self.lock:
            self.servers.pop(server["id"], None)
        if server.get("vm") is not None and self.launcher is not None:
            self.launcher.delete(server["id"])
        for port in server.get("ports", []):
            self.neutron.unbind_port(port["port_id"])
        return 204, None

    def list_interfaces(self, request):
        server = self._server(request)
        return 200, {"interfaceAttachments": [
            {"port_id": p["port_id"], "net_id": p["network_id"], "mac_addr": p["mac"], "port_state": "ACTIVE",
             "fixed_ips": [{"ip_address": p["ip"]}]} for p in server.get("ports", [])]}

    # limits ---------------------------------------------------------------------------
    def limits(self, request):
        project = request.project_id
        quota = {**self.default_quota, **self.quota.get(project, {})}
        used = {"totalInstancesUsed": 0, "totalCoresUsed": 0, "totalRAMUsed": 0,
                **self.usage.get(project, {})}
        absolute = {**quota, **used, "maxTotalKeypairs": 100, "maxServerMeta": 128,
                    "maxImageMeta": 128, "maxPersonality": 5, "maxPersonalitySize": 10240,
                    "maxServerGroups": 10, "maxServerGroupMembers": 10, "totalServerGroupsUsed": 0}
        return 200, {"limits": {"rate": [], "absolute": absolute}}

    # quota sets -----------------------------------------------------------------------
    _QUOTA_KEYS = {"instances": "maxTotalInstances", "cores": "maxTotalCores", "ram": "maxTotalRAMSize"}

    def _quota_set(self, project):
        quota = {**self.default_quota, **self.quota.get(project, {})}
        return {"id": project, **{k: quota[v] for k, v in self._QUOTA_KEYS.items()}}

    def show_quota(self, request):
        return 200, {"quota_set": self._quota_set(request.params["project"])}

    def update_quota(self, request):
        if not request.is_admin:
            raise HTTPError(403, "Policy doesn't allow os_compute_api:os-quota-sets:update to be performed.")
        body = request.body.get("quota_set")
        if not isinstance(body, dict):
            raise HTTPError(400, "Invalid input for field/attribute quota_set.")
        unknown = set(body) - set(self._QUOTA_KEYS) - {"force"}
        if unknown:
            raise HTTPError(400, "Invalid input for field/attribute quota_set. Additional properties are "
                                 f"not allowed ({', '.join(sorted(unknown))} were unexpected)")
        project = request.params["project"]
        with self.lock:
            self.quota.setdefault(project, {}).update({self._QUOTA_KEYS[k]: int(v) for k, v in body.items()
                                                       if k in self._QUOTA_KEYS})
        quota_set = self._quota_set(project)
        quota_set.pop("id")
        return 200, {"quota_set": quota_set}

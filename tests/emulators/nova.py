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
Error bodies are `{"<kind>": {"code": N, "message": "..."}}` as Nova writes them.
Servers are not emulated: bays' servers exist only as Heat stand-ins in the tests.
"""

import uuid

from emulators.base import HTTPError, Service

MIN_VERSION, MAX_VERSION = (2, 1), (2, 96)
ERROR_KINDS = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               406: "notAcceptable", 409: "conflictingRequest", 405: "notAllowed"}


def _parse_version(text):
    major, minor = text.strip().split(".")
    return int(major), int(minor)


class Nova(Service):
    name = "compute"

    def __init__(self, validator, base_url):
        super().__init__(validator)
        self.base_url = base_url
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

"""Emulated Magnum (Container Infrastructure Management API v1) that drives the REAL Heat.

Follows the Magnum API reference (docs.openstack.org/api-ref/container-infrastructure-management/):
- GET / and /v1: versions with `min_version` 1.1 / `max_version`; microversions in
  `OpenStack-API-Version: container-infra X.Y` (or `latest`); every answer carries
  `OpenStack-API-Minimum-Version`, `OpenStack-API-Maximum-Version` and `OpenStack-API-Version`;
  an unsupported version is 406;
- /v1/clustertemplates and /v1/clusters (POST 201/202, GET, DELETE 204; PATCH is not used
  by bayctl and is absent); in `legacy` mode only /v1/baymodels and /v1/bays, as Magnum had
  before clusters existed;
- errors are `{"errors": [{"request_id", "code", "status", "title", "detail", "links"}]}`.

What Magnum's API and conductor check and do, emulated in the same order:
- cluster template create: the image must exist in Glance (the REAL one) and carry os_distro
  (400 otherwise); keypair, flavors and external network are looked up in Nova/Neutron
  (emulated, through the catalog); the driver is chosen by (server_type, os_distro, coe)
  and an unsupported combination is 400 "Cluster type (vm, <os>, <coe>) not supported."
  Releases up to 13 have the Mesos driver (mesos_ubuntu_v1: os_distro ubuntu); 14.0.0 and
  15.x refuse coe=mesos in the API ("Requested COE type mesos is not supported.", as the real
  15.0.2 answers: tests/functional/test_cloud_magnum_real.py runs the real 10.0.0); `16` and
  later have no Mesos driver at all ("Cluster type ... not supported.").
- cluster create: 202 and a Heat stack named `<cluster>-<random>` created in the REAL Heat
  with the caller's token (Magnum's conductor uses a trust; same effect here). The stack is
  built from bayctl's heat_templates with the test stand-ins, since Magnum's own driver
  templates need Nova and Neutron; its outputs are the ones the mesos_ubuntu_v1 driver had.
- cluster status/addresses are synced from the stack on every GET (the conductor's periodic
  task), status_reason carries Heat's reason; DELETE deletes the stack, and the cluster
  disappears (404) once the stack is gone.
"""

import os
import secrets
import uuid

from harness.emulators.base import HTTPError, Service

ERROR_CODES = {400: "client", 403: "client", 404: "client", 406: "client", 409: "client", 500: "server"}
MESOS_DRIVER_DISTROS = ("ubuntu",)  # magnum/drivers/mesos_ubuntu_v1/driver.py provides
KUBERNETES_DRIVER_DISTROS = ("fedora-coreos",)
TEMPLATE_FIELDS = (
    "name",
    "coe",
    "image_id",
    "keypair_id",
    "external_network_id",
    "fixed_network",
    "fixed_subnet",
    "flavor_id",
    "master_flavor_id",
    "dns_nameserver",
    "docker_volume_size",
    "labels",
    "network_driver",
    "volume_driver",
    "server_type",
    "public",
    "hidden",
    "registry_enabled",
    "tls_disabled",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "master_lb_enabled",
    "floating_ip_enabled",
    "apiserver_port",
    "docker_storage_driver",
    "insecure_registry",
    "tags",
)


class Magnum(Service):
    name = "container-infra"

    def __init__(self, validator, base_url, tier, release="10.0.0", legacy=False):
        super().__init__(validator)
        self.base_url = base_url
        self.tier = tier
        self.release = release  # "10.0.0": has Mesos; "14.0.0"-"15.x": API refuses it; "16.0.0"+: no driver
        self.legacy = legacy  # True: only baymodels/bays exist (a Magnum from before clusters)
        self.max_version = (1, 10)
        self.templates = {}
        self.clusters = {}
        self.route("GET", "", self.root, auth=False)
        self.route("GET", "/v1", self.v1_root, auth=False)
        for kind, tpl_kind in (("clusters", "clustertemplates"), ("bays", "baymodels")):
            self.route("GET", f"/v1/{tpl_kind}", self._guard(tpl_kind, self.list_templates))
            self.route("POST", f"/v1/{tpl_kind}", self._guard(tpl_kind, self.create_template))
            self.route("GET", f"/v1/{tpl_kind}/(?P<id>[^/]+)", self._guard(tpl_kind, self.get_template))
            self.route("DELETE", f"/v1/{tpl_kind}/(?P<id>[^/]+)", self._guard(tpl_kind, self.delete_template))
            self.route("GET", f"/v1/{kind}", self._guard(kind, self.list_clusters))
            self.route("POST", f"/v1/{kind}", self._guard(kind, self.create_cluster))
            self.route("GET", f"/v1/{kind}/(?P<id>[^/]+)", self._guard(kind, self.get_cluster))
            self.route("DELETE", f"/v1/{kind}/(?P<id>[^/]+)", self._guard(kind, self.delete_cluster))

    def configure(self, release=None, legacy=None):
        """Tests switch which Magnum this is (the REAL Heat behind it stays)."""
        if release is not None:
            self.release = release
        if legacy is not None:
            self.legacy = legacy

    # -- protocol ---------------------------------------------------------------------------

    def error_body(self, status, message, kind):
        return {
            "errors": [
                {
                    "request_id": "",
                    "code": ERROR_CODES.get(status, "client"),
                    "status": status,
                    "title": message,
                    "detail": message,
                    "links": [],
                }
            ]
        }

    def response_headers(self, request):
        version = self._version(request)
        return [
            ("OpenStack-API-Minimum-Version", "container-infra 1.1"),
            ("OpenStack-API-Maximum-Version", f"container-infra {self._max()}"),
            ("OpenStack-API-Version", "container-infra {}.{}".format(*version)),
            ("Vary", "OpenStack-API-Version"),
        ]

    def _max(self):
        return "{}.{}".format(*self.max_version)

    def _version(self, request):
        header = request.headers.get("openstack-api-version", "")
        if not header.startswith("container-infra "):
            return (1, 1)
        text = header.split(" ", 1)[1].strip()
        if text == "latest":
            return self.max_version
        try:
            version = tuple(int(x) for x in text.split("."))
        except ValueError:
            raise HTTPError(400, f"Invalid value for OpenStack-API-Version header: {text}") from None
        if not (1, 1) <= version <= self.max_version:
            raise HTTPError(
                406,
                f"Version {text} was requested but the minor version is not supported by this "
                "service. The supported version range is: [1.1, %d.%d]." % self.max_version,
            )
        return version

    def _guard(self, collection, handler):
        legacy_only = collection in ("bays", "baymodels")

        def guarded(request):
            self._version(request)
            if legacy_only != self.legacy:
                raise HTTPError(404, f"The resource could not be found. /v1/{collection}")
            return handler(request, collection)

        return guarded

    def root(self, request):
        return 200, {
            "name": "OpenStack Magnum API",
            "versions": [self._v1_doc()],
            "default_version": self._v1_doc(),
        }

    def _v1_doc(self):
        return {
            "id": "v1",
            "status": "CURRENT",
            "min_version": "1.1",
            "max_version": self._max(),
            "links": [{"rel": "self", "href": self.base_url + "/v1/"}],
        }

    def v1_root(self, request):
        return 200, {
            "id": "v1",
            "media_types": [{"base": "application/json", "type": "application/vnd.openstack.magnum.v1+json"}],
            "links": [{"rel": "self", "href": self.base_url + "/v1/"}],
        }

    # -- helpers calling the rest of the (real + emulated) cloud as the caller ------------------

    def _conn(self, request):
        import openstack

        auth = self.tier.auth
        # The caller's token only: never a clouds.yaml or OS_* of the process the emulator runs in
        # (a test's own clouds.yaml would add its password to the token plugin).
        return openstack.connect(
            load_yaml_config=False,
            load_envvars=False,
            auth_type="token",
            auth_url=auth["auth_url"],
            token=request.headers["x-auth-token"],
            project_id=request.project_id,
            region_name=auth["region_name"],
        )

    def _find(self, store, ref, project, what):
        for item in store.values():
            if (item["uuid"] == ref or item["name"] == ref) and item["project_id"] == project:
                return item
        raise HTTPError(404, f"{what} {ref} could not be found.")

    def _tpl_key(self, collection):
        return "baymodel_id" if collection in ("bays", "baymodels") else "cluster_template_id"

    # -- cluster templates / baymodels ------------------------------------------------------

    def list_templates(self, request, collection):
        items = [t for t in self.templates.values() if t["project_id"] == request.project_id or t["public"]]
        return 200, {collection: items}

    def get_template(self, request, collection):
        return 200, self._find(self.templates, request.params["id"], request.project_id, "ClusterTemplate")

    def create_template(self, request, collection):
        body = request.body
        unknown = set(body) - set(TEMPLATE_FIELDS)
        if unknown:
            raise HTTPError(
                400, f"Unknown attribute for argument cluster_template: {', '.join(sorted(unknown))}"
            )
        for field in ("image_id", "external_network_id", "coe"):
            if not body.get(field):
                raise HTTPError(
                    400, f"Invalid input for field/attribute {field}. Value: None. Mandatory field missing."
                )
        conn = self._conn(request)
        try:
            image = conn.image.find_image(body["image_id"])
            if image is None:
                raise HTTPError(404, f"Image {body['image_id']} could not be found.")
            os_distro = image.os_distro
            if not os_distro:
                raise HTTPError(400, f"Image {body['image_id']} doesn't contain os_distro field.")
            if body.get("keypair_id") and conn.compute.find_keypair(body["keypair_id"]) is None:
                raise HTTPError(404, f"Unable to find keypair {body['keypair_id']}.")
            for field in ("flavor_id", "master_flavor_id"):
                if body.get(field) and conn.compute.find_flavor(body[field]) is None:
                    raise HTTPError(400, f"Unable to find flavor {body[field]}.")
            if conn.network.find_network(body["external_network_id"]) is None:
                raise HTTPError(400, f"Unable to find external network {body['external_network_id']}.")
        finally:
            conn.close()
        server_type, coe = body.get("server_type", "vm"), body["coe"]
        drivers = {"kubernetes": KUBERNETES_DRIVER_DISTROS}
        major = int(self.release.split(".")[0])
        if coe == "mesos" and 14 <= major <= 15:  # the API's own COE check (the driver still ships)
            raise HTTPError(400, "Requested COE type mesos is not supported.")
        if major <= 15:
            drivers["mesos"] = MESOS_DRIVER_DISTROS
        if server_type != "vm" or os_distro not in drivers.get(coe, ()):
            raise HTTPError(400, f"Cluster type ({server_type}, {os_distro}, {coe}) not supported.")
        with self.lock:
            if any(
                t["name"] == body.get("name") and t["project_id"] == request.project_id
                for t in self.templates.values()
            ):
                raise HTTPError(409, f"A ClusterTemplate with name {body.get('name')} already exists.")
            tpl = {field: body.get(field) for field in TEMPLATE_FIELDS}
            tpl.update(
                uuid=str(uuid.uuid4()),
                server_type=server_type,
                labels=body.get("labels") or {},
                public=bool(body.get("public", False)),
                project_id=request.project_id,
                cluster_distro=os_distro,
                links=[],
            )
            self.templates[tpl["uuid"]] = tpl
        return 201, tpl

    def delete_template(self, request, collection):
        tpl = self._find(self.templates, request.params["id"], request.project_id, "ClusterTemplate")
        users = [c for c in self.clusters.values() if c["template_uuid"] == tpl["uuid"]]
        if users:
            raise HTTPError(400, f"ClusterTemplate {tpl['uuid']} is referenced by one or multiple clusters.")
        del self.templates[tpl["uuid"]]
        return 204, None

    # -- clusters / bays ------------------------------------------------------------------------

    def create_cluster(self, request, collection):
        from heatclient import client as heat_client

        body = request.body
        tpl_ref = body.get(self._tpl_key(collection))
        if not tpl_ref:
            raise HTTPError(
                400,
                f"Invalid input for field/attribute {self._tpl_key(collection)}. Mandatory field missing.",
            )
        tpl = self._find(self.templates, tpl_ref, request.project_id, "ClusterTemplate")
        name = body.get("name") or f"cluster-{secrets.token_hex(3)}"
        node_count = int(body.get("node_count", 1))
        if node_count < 0:
            raise HTTPError(
                400, "Invalid input for field/attribute node_count. Value: -1. Value should be >= 0"
            )
        keypair = body.get("keypair") or tpl.get("keypair_id")
        if not keypair:
            raise HTTPError(400, "Invalid input for field/attribute keypair. Mandatory field missing.")
        labels = {**tpl["labels"], **(body.get("labels") or {})}
        cluster = {
            "uuid": str(uuid.uuid4()),
            "name": name,
            "template_uuid": tpl["uuid"],
            self._tpl_key(collection): tpl["uuid"],
            "node_count": node_count,
            "master_count": int(body.get("master_count", 1)),
            "keypair": keypair,
            "labels": labels,
            "create_timeout": int(body.get("create_timeout") or body.get("bay_create_timeout") or 60),
            "project_id": request.project_id,
            "status": "CREATE_IN_PROGRESS",
            "status_reason": None,
            "stack_id": None,
            "api_address": None,
            "master_addresses": [],
            "node_addresses": [],
            "coe_version": None,
            "links": [],
        }
        with self.lock:
            if any(
                c["name"] == name and c["project_id"] == request.project_id for c in self.clusters.values()
            ):
                raise HTTPError(409, f"A cluster with name {name} already exists.")
            self.clusters[cluster["uuid"]] = cluster
        # The conductor's job: build the stack in Heat (the real one).
        from bayctl.cloud.heat_client import load_template
        from bayctl.providers.heat import templates_dir

        base = templates_dir()
        template, files, environment = load_template(
            os.path.join(base, "mesosbay.yaml"), [os.path.join(base, "environments", "standins.yaml")]
        )
        params = {
            "bay_name": name,
            "ssh_key_name": keypair,
            "server_image": tpl["image_id"],
            "master_flavor": tpl.get("master_flavor_id") or "m1.small",
            "slave_flavor": tpl.get("flavor_id") or "m1.small",
            "external_network": tpl["external_network_id"],
            "number_of_slaves": node_count,
        }
        if tpl.get("dns_nameserver"):
            params["dns_nameserver"] = tpl["dns_nameserver"]
        for label in ("mesos_slave_isolation", "mesos_slave_executor_registration_timeout"):
            if label in labels:
                params[label] = labels[label]
        conn = self._conn(request)
        try:
            hc = heat_client.Client(
                "1",
                session=conn.session,
                service_type="orchestration",
                region_name=self.tier.auth["region_name"],
            )
            stack_name = f"{name}-{secrets.token_hex(6)}"
            created = hc.stacks.create(
                stack_name=stack_name,
                template=template,
                files=files,
                environment=environment,
                parameters=params,
                timeout_mins=cluster["create_timeout"],
                disable_rollback=True,
            )
            cluster["stack_id"] = created["stack"]["id"]
            cluster["_stack_ref"] = f"{stack_name}/{cluster['stack_id']}"
        except Exception as e:
            cluster.update(status="CREATE_FAILED", status_reason=str(e)[:255])
        finally:
            conn.close()
        return 202, {"uuid": cluster["uuid"]}

    def _sync(self, request, cluster):
        """The conductor's periodic status sync, done on demand."""
        from heatclient import client as heat_client
        from heatclient import exc as heat_exc

        if (
            not cluster.get("_stack_ref")
            or cluster["status"].endswith("_COMPLETE")
            and not cluster["status"].startswith("DELETE")
        ):
            return cluster
        conn = self._conn(request)
        try:
            hc = heat_client.Client(
                "1",
                session=conn.session,
                service_type="orchestration",
                region_name=self.tier.auth["region_name"],
            )
            try:
                stack = hc.stacks.get(cluster["_stack_ref"])
            except heat_exc.HTTPNotFound:
                stack = None
            if stack is None or stack.stack_status == "DELETE_COMPLETE":
                if cluster["status"].startswith("DELETE"):
                    self.clusters.pop(cluster["uuid"], None)
                    return None
                return cluster
            cluster["status"] = stack.stack_status
            cluster["status_reason"] = stack.stack_status_reason
            if stack.stack_status == "CREATE_COMPLETE":
                out = {o["output_key"]: o.get("output_value") for o in stack.outputs or []}
                cluster["api_address"] = out.get("api_address")
                cluster["master_addresses"] = [out.get("mesos_master")]
                cluster["node_addresses"] = out.get("mesos_slaves") or []
        finally:
            conn.close()
        return cluster

    def _public(self, cluster):
        return {k: v for k, v in cluster.items() if not k.startswith("_") and k != "template_uuid"}

    def list_clusters(self, request, collection):
        items = [
            self._public(c)
            for c in list(self.clusters.values())
            if c["project_id"] == request.project_id and (self._sync(request, c) is not None)
        ]
        return 200, {collection: items}

    def get_cluster(self, request, collection):
        cluster = self._find(self.clusters, request.params["id"], request.project_id, "Cluster")
        cluster = self._sync(request, cluster)
        if cluster is None:
            raise HTTPError(404, f"Cluster {request.params['id']} could not be found.")
        return 200, self._public(cluster)

    def delete_cluster(self, request, collection):
        from heatclient import client as heat_client
        from heatclient import exc as heat_exc

        cluster = self._find(self.clusters, request.params["id"], request.project_id, "Cluster")
        cluster["status"] = "DELETE_IN_PROGRESS"
        if not cluster.get("_stack_ref"):
            self.clusters.pop(cluster["uuid"], None)
            return 204, None
        conn = self._conn(request)
        try:
            hc = heat_client.Client(
                "1",
                session=conn.session,
                service_type="orchestration",
                region_name=self.tier.auth["region_name"],
            )
            try:
                hc.stacks.delete(cluster["_stack_ref"])
            except heat_exc.HTTPNotFound:
                self.clusters.pop(cluster["uuid"], None)
        finally:
            conn.close()
        return 204, None

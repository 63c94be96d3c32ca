"""Magnum's two cluster APIs behind one interface, so MagnumProvider is written once.

- `Clusters`: /v1/clustertemplates and /v1/clusters, through python-magnumclient (every Magnum
  that still builds Mesos has them);
- `LegacyBays`: /v1/baymodels and /v1/bays, from Magnum's API reference, over the connection's
  keystoneauth session (a Magnum so old that it has only these; today's magnumclient no longer
  speaks them).

Both hand records over as plain dicts with Magnum's own keys (`uuid`, `name`, `status`,
`stack_id`, ...), and raise the API's refusals as the provider words them (`refusal(error, what)`).
"""

import abc
from typing import Optional

from bayctl.errors import CloudError


def magnum_client(conn):
    """python-magnumclient on `conn`'s keystoneauth session; CloudError if the cloud has no Magnum."""
    from magnumclient.v1 import client

    # clouds.yaml's `container_infra_endpoint_override` (openstacksdk's per-service override)
    override = conn.config.get_endpoint("container-infra")
    if override:
        return client.Client(session=conn.session, endpoint_override=override)
    try:
        conn.session.get_endpoint(service_type="container-infra", interface=conn.config.get_interface(),
                                  region_name=conn.config.get_region_name())
    except Exception:
        raise CloudError("this cloud has no Magnum (container-infra) endpoint: use --provider heat") from None
    return client.Client(session=conn.session, service_type="container-infra",
                         interface=conn.config.get_interface(), region_name=conn.config.get_region_name())


def only_legacy_bays(mc) -> bool:
    """Does this Magnum have only baymodels/bays (GET /v1/clustertemplates answers 404)?"""
    from magnumclient import exceptions as mc_exc

    try:
        mc.cluster_templates.list(limit=1)
        return False
    except mc_exc.NotFound:
        return True


class ClusterAPI(abc.ABC):
    """What the magnum provider asks of Magnum: templates and clusters, get/create/delete/list."""

    template_kind = "cluster template"  # the API's word, for messages

    @abc.abstractmethod
    def templates(self) -> list:
        """[{"name": ..., "uuid": ...}, ...]"""

    @abc.abstractmethod
    def create_template(self, attrs: dict) -> str:
        """The new template's uuid."""

    @abc.abstractmethod
    def delete_template_if_unused(self, template_id: str, own_prefix: str) -> None:
        """Delete template `template_id` if its name has bayctl's prefix and no cluster uses it."""

    @abc.abstractmethod
    def get(self, ref: str) -> Optional[dict]:
        """The cluster by name or uuid, or None."""

    def get_while_deleting(self, cluster: dict) -> Optional[dict]:
        """The cluster's record while it is being deleted; None once it is gone."""
        return self.get(cluster["uuid"])

    @abc.abstractmethod
    def create(self, name: str, template_id: str, slaves: int, keypair: Optional[str],
               timeout_mins: int) -> str:
        """Ask for a cluster of one master and `slaves` slaves; its uuid."""

    @abc.abstractmethod
    def delete(self, uuid: str) -> None:
        ...

    @abc.abstractmethod
    def list(self) -> list:
        """Every cluster, as dicts."""

    @abc.abstractmethod
    def has_mesos_template(self) -> bool:
        """Is there a template with coe=mesos (proof of Mesos support without asking for a bay)?"""


class Clusters(ClusterAPI):
    """/v1/clustertemplates and /v1/clusters through python-magnumclient."""

    def __init__(self, client):
        self.mc = client

    def templates(self):
        return [{"name": t.name, "uuid": t.uuid} for t in self.mc.cluster_templates.list(detail=False)]

    def create_template(self, attrs):
        return self.mc.cluster_templates.create(**attrs).uuid

    def delete_template_if_unused(self, template_id, own_prefix):
        template = self.mc.cluster_templates.get(template_id)
        if not template.name.startswith(own_prefix):
            return
        if any(c.cluster_template_id == template_id for c in self.mc.clusters.list()):
            return
        self.mc.cluster_templates.delete(template_id)

    def get(self, ref):
        from magnumclient import exceptions as mc_exc

        try:
            return self.mc.clusters.get(ref).to_dict()
        except mc_exc.NotFound:
            return None

    def get_while_deleting(self, cluster):
        from magnumclient import exceptions as mc_exc

        try:
            return self.get(cluster["uuid"])
        except mc_exc.BadRequest:
            # Magnum 10.0.0 answers 400 "Invalid input for field/attribute node_count" for a
            # cluster whose node groups are already destroyed and whose own record goes next.
            return dict(cluster, status="DELETE_IN_PROGRESS")

    def create(self, name, template_id, slaves, keypair, timeout_mins):
        return self.mc.clusters.create(name=name, cluster_template_id=template_id, node_count=slaves,
                                       master_count=1, keypair=keypair, create_timeout=timeout_mins).uuid

    def delete(self, uuid):
        self.mc.clusters.delete(uuid)

    def list(self):
        return [c.to_dict() for c in self.mc.clusters.list()]

    def has_mesos_template(self):
        return any(t.coe == "mesos" for t in self.mc.cluster_templates.list(detail=True))


class LegacyBays(ClusterAPI):
    """/v1/baymodels and /v1/bays, from Magnum's API reference, over the keystoneauth session."""

    template_kind = "baymodel"

    def __init__(self, conn):
        self.conn = conn
        self.kw = dict(endpoint_filter={"service_type": "container-infra",
                                        "interface": conn.config.get_interface(),
                                        "region_name": conn.config.get_region_name()},
                       headers={"OpenStack-API-Version": "container-infra 1.1"}, raise_exc=False)
        override = conn.config.get_endpoint("container-infra")
        if override:
            self.kw["endpoint_override"] = override

    def call(self, method, path, json=None):
        # The catalog URL of Magnum ends in /v1 (as Magnum registers it).
        resp = self.conn.session.request(path, method, json=json, **self.kw)
        if resp.status_code >= 400:
            try:
                detail = resp.json()["errors"][0]["detail"]
            except (ValueError, KeyError, IndexError, TypeError):
                detail = resp.text[:300]
            err = CloudError(f"Magnum: {detail}")
            err.status_code = resp.status_code
            raise err
        return resp.json() if resp.content else None

    def templates(self):
        return self.call("GET", "/baymodels")["baymodels"]

    def create_template(self, attrs):
        return self.call("POST", "/baymodels", attrs)["uuid"]

    def delete_template_if_unused(self, template_id, own_prefix):
        # Asked only once its bay is gone (the provider's delete); no use check, as before.
        template = next((t for t in self.templates() if t["uuid"] == template_id), None)
        if template and template["name"].startswith(own_prefix):
            self.call("DELETE", f"/baymodels/{template_id}")

    def get(self, ref):
        try:
            return self.call("GET", f"/bays/{ref}")
        except CloudError as e:
            if getattr(e, "status_code", None) == 404:
                return None
            raise

    def create(self, name, template_id, slaves, keypair, timeout_mins):
        # A bay takes its keypair from its baymodel.
        return self.call("POST", "/bays", {"name": name, "baymodel_id": template_id, "node_count": slaves,
                                           "master_count": 1, "bay_create_timeout": timeout_mins})["uuid"]

    def delete(self, uuid):
        self.call("DELETE", f"/bays/{uuid}")

    def list(self):
        return self.call("GET", "/bays")["bays"]

    def has_mesos_template(self):
        return False  # as before: a Magnum this old is not chosen by `auto` without a bay to ask about

"""The magnum provider: a Mesos cluster through the cloud's Magnum (releases up to 10.0.0).

Magnum's API refuses coe=mesos from 14.0.0 on ("Requested COE type mesos is not supported.";
the mesos_ubuntu_v1 driver itself went in 16.0.0), and 10.1.0-13.x fail every Mesos stack (a
missing `allowed_cidrs`), so this works on a Magnum up to 10.0.0; a refusal (that one, or
"Cluster type (vm, <os_distro>, mesos) not supported" for a non-ubuntu image) tells the user
to use `--provider heat`. Clusters and cluster templates go through python-magnumclient; a
Magnum so old that it has only baymodels/bays (which today's magnumclient no longer speaks)
is driven through the same session with the API reference's /v1/baymodels and /v1/bays: the
two are backends of one interface (bayctl.providers.magnum_api), chosen once.

The stack Magnum's conductor creates is watched and diagnosed like the heat provider's.
"""

import logging
import time

from bayctl.cloud.diagnosis import raise_stack_failed
from bayctl.cloud.heat_client import heat
from bayctl.cloud.stacks import DEFAULT_INTERVAL, AdaptivePolling, wait_for_stack
from bayctl.errors import CloudError
from bayctl.model import MASTER, SLAVE, ZOOKEEPER_PORT, BayStatus, Node, Progress
from bayctl.providers.base import Provider, ProviderInfo
from bayctl.providers.heat import stated_zookeeper
from bayctl.providers.magnum_api import ClusterAPI, Clusters, LegacyBays, magnum_client, only_legacy_bays

LOG = logging.getLogger(__name__)

TEMPLATE_PREFIX = "bayctl-"  # cluster templates bayctl makes itself (deleted with their bay)


# Seconds a cluster whose stack is gone may show a status other than DELETE_* before its
# delete is asked for again (Magnum's status sync runs every 10 s).
RESEND_DELETE_AFTER = 30.0


class MesosNotSupported(CloudError):
    """This cloud's Magnum has no Mesos driver (or none for the image's os_distro)."""


def _magnum_message(error):
    """The `detail` of Magnum's {"errors": [...]} body, else the exception text, one line."""
    for attr in ("details", "message"):
        text = getattr(error, attr, None)
        if text:
            break
    else:
        text = str(error)
    return str(text).strip().splitlines()[0][:300]


def _first(value):
    """An address output that may be one address or a list of them (one per master)."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


class MagnumProvider(Provider):
    name = "magnum"
    info = ProviderInfo(uses_template=True)  # a cluster template (baymodel) per bay, or a shared one

    def __init__(self, conn, cluster_template=None, poll_interval=DEFAULT_INTERVAL, legacy=None):
        """`cluster_template`: use this existing (shared) template instead of making one per bay."""
        self.conn = conn
        self.shared_template = cluster_template
        self.poll_interval = poll_interval
        self._legacy = legacy
        self.mc = magnum_client(conn)  # CloudError where the catalog has no Magnum
        self._api = None

    @property
    def legacy(self):
        """True where Magnum has only baymodels/bays (asked once: GET /v1/clustertemplates 404)."""
        if self._legacy is None:
            self._legacy = only_legacy_bays(self.mc)
        return self._legacy

    @property
    def api(self) -> ClusterAPI:
        """This Magnum's cluster API (clusters, or legacy bays), chosen once."""
        if self._api is None:
            self._api = LegacyBays(self.conn) if self.legacy else Clusters(self.mc)
        return self._api

    # -- cluster templates ------------------------------------------------------------------------

    def template_name(self, request):
        return self.shared_template or TEMPLATE_PREFIX + request.name

    def _template_attrs(self, request):
        attrs = {"name": self.template_name(request), "coe": "mesos", "image_id": request.image,
                 "keypair_id": request.keypair, "external_network_id": request.external_network,
                 "flavor_id": request.slave_flavor or request.master_flavor,
                 "master_flavor_id": request.master_flavor, "server_type": "vm", "network_driver": "docker",
                 "labels": {k: str(v) for k, v in request.labels.items()}, "public": False}
        if request.dns_nameserver:
            attrs["dns_nameserver"] = request.dns_nameserver
        return {k: v for k, v in attrs.items() if v is not None}

    def _refusal(self, error, what):
        message = _magnum_message(error)
        if "not supported" in message and "mesos" in message.lower():
            return MesosNotSupported(f"this cloud's Magnum does not support Mesos ({message}); Magnum's "
                                     "API refuses Mesos from 14.0.0 on, and earlier releases run it "
                                     "only on os_distro=ubuntu images: use --provider heat")
        return CloudError(f"Magnum refused the {what}: {message}")

    def ensure_template(self, request):
        """The bay's cluster template (baymodel): reused by name, else created. Returns its uuid."""
        name, api = self.template_name(request), self.api
        for tpl in api.templates():
            if tpl["name"] == name:
                return tpl["uuid"]
        if self.shared_template:
            raise CloudError(f"{api.template_kind} {name!r} not found")
        try:
            return api.create_template(self._template_attrs(request))
        except Exception as e:  # magnumclient's HTTP errors, or the legacy API's CloudError
            raise self._refusal(e, api.template_kind) from None

    def accepts_mesos(self, request):
        """Does this Magnum accept a Mesos template for this request? (for --provider auto)

        Asks with the bay's own template, which a magnum create needs anyway; when refused
        nothing is left behind."""
        try:
            self.ensure_template(request)
            return True
        except MesosNotSupported:
            return False

    def has_mesos_template(self):
        """Is there a Mesos template already (Mesos support, proven without a bay to ask about)?"""
        return self.api.has_mesos_template()

    # -- Provider -----------------------------------------------------------------------------

    def _cluster(self, ref):
        return self.api.get(ref)

    def create(self, request):
        existing = self._cluster(request.name)
        if existing is not None:
            LOG.info("cluster %s exists (%s): resuming", request.name, existing["status"])
            return existing["uuid"]
        template = self.ensure_template(request)
        timeout_mins = max(1, int(request.timeout // 60))
        try:
            return self.api.create(request.name, template, request.slaves, request.keypair, timeout_mins)
        except Exception as e:
            raise self._refusal(e, "cluster") from None

    def _stack_ref(self, cluster):
        stack = heat(self.conn).stacks.get(cluster["stack_id"])  # one lookup: "name/id" afterwards
        return f"{stack.stack_name}/{stack.id}"

    def wait(self, ref, progress=None, timeout=None, action="CREATE"):
        deadline = None if timeout is None else time.monotonic() + timeout
        cluster = self._cluster(ref)
        if cluster is None:
            raise CloudError(f"cluster {ref} not found")
        backoff = self._backoff()
        while not cluster.get("stack_id") and cluster["status"].endswith("IN_PROGRESS"):
            self._check_deadline(deadline, timeout, cluster, action)
            self._sleep(backoff, deadline)
            cluster = self._cluster(ref)
        if cluster["status"] == f"{action}_FAILED" and not cluster.get("stack_id"):
            raise CloudError(f"cluster {cluster['name']} {cluster['status']}: {cluster.get('status_reason')}")
        stack_ref = self._stack_ref(cluster)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        # The stack's events give the progress; a failure is diagnosed to the deepest resource.
        wait_for_stack(self.conn, stack_ref, action=action, progress=progress, timeout=remaining,
                       interval=self.poll_interval, what=f"cluster {cluster['name']}: stack",
                       provider=self.name)
        # Then Magnum's own view catches up (its conductor syncs from the stack periodically:
        # backing off, as nothing but that sync can change it).
        backoff = self._backoff()
        while True:
            cluster = self._cluster(ref)
            if cluster is None or cluster["status"] == f"{action}_COMPLETE":
                break
            if cluster["status"].endswith("FAILED"):
                raise_stack_failed(self.conn, stack_ref, what=f"cluster {cluster['name']}")
            self._check_deadline(deadline, timeout, cluster, action)
            self._sleep(backoff, deadline)
        if progress is not None and cluster is not None:
            progress(Progress(message=f"cluster {cluster['name']} {cluster['status']}", done=1, total=1,
                              status=cluster["status"]))
        status = cluster["status"] if cluster else f"{action}_COMPLETE"
        return BayStatus(name=cluster["name"] if cluster else ref, id=ref, status=status, provider=self.name)

    def _backoff(self):
        """The stack waiter's policy for Magnum's own records: each quiet GET waits longer."""
        return AdaptivePolling(floor=self.poll_interval)

    @staticmethod
    def _sleep(backoff, deadline):
        delay = backoff.after_poll(False)  # a record that is still not there yet: no news
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        time.sleep(delay)

    @staticmethod
    def _check_deadline(deadline, timeout, cluster, action):
        if deadline is not None and time.monotonic() >= deadline:
            raise CloudError(f"cluster {cluster['name']}: {action} not finished after {timeout:.0f}s "
                             f"({cluster['status']}); it is left as it is")

    def diagnose(self, ref):
        """Find the stack behind a failed cluster and raise StackFailed for its deepest failure."""
        cluster = self._cluster(ref)
        if cluster is None or not cluster.get("stack_id"):
            raise CloudError(f"cluster {ref}: no stack to diagnose")
        raise_stack_failed(self.conn, self._stack_ref(cluster), what=f"cluster {cluster['name']}")

    def _outputs(self, ref):
        """(cluster, its stack's outputs) of a created cluster."""
        cluster = self._cluster(ref)
        if cluster is None or cluster["status"] != "CREATE_COMPLETE":
            raise CloudError(f"cluster {ref} is {cluster['status'] if cluster else 'gone'}: no nodes yet")
        stack = heat(self.conn).stacks.get(self._stack_ref(cluster))
        return cluster, {o["output_key"]: o.get("output_value") for o in stack.outputs or []}

    def nodes(self, ref):
        cluster, out = self._outputs(ref)
        name = cluster["name"]
        # Magnum's own mesoscluster.yaml gives the master's addresses as lists (its masters are a
        # ResourceGroup: one entry per master); bayctl's single-master bay takes the first.
        nodes = [Node(name=f"{name}-master", role=MASTER, public_ip=_first(out.get("mesos_master")) or
                      (cluster.get("master_addresses") or [None])[0],
                      private_ip=_first(out.get("mesos_master_private")))]
        publics = out.get("mesos_slaves") or cluster.get("node_addresses") or []
        privates = out.get("mesos_slaves_private") or []
        for i, private in enumerate(privates):
            nodes.append(Node(name=f"{name}-slave-{i}", role=SLAVE,
                              public_ip=publics[i] if i < len(publics) else None, private_ip=private))
        return nodes

    def master_zookeeper(self, ref):
        """The ZooKeeper of the cluster's master. Templates that state it (an output
        `master_zookeeper`, as bayctl's own give) are taken at their word; Magnum's own
        mesos_ubuntu_v1 states nothing, but its master always runs one for Mesos on ZooKeeper's
        port (configure-mesos-master.sh writes zoo.cfg, start-services-master.sh starts it, and
        every slave's --master is zk://<master>:2181/mesos). `distribution auto` falls back to
        SSH seeding when it does not answer."""
        _cluster, out = self._outputs(ref)
        if "master_zookeeper" in out:
            return stated_zookeeper(out["master_zookeeper"])
        master = _first(out.get("mesos_master_private"))
        return f"{master}:{ZOOKEEPER_PORT}" if master else None

    def prepare_nodes(self, ref, nodes, request):
        """Magnum's own templates leave the slaves' ports without the container range's address
        pair, and the master's ZooKeeper closed to the slaves (bayctl's Heat templates open
        both): open them (bayctl.providers.magnum_ports)."""
        from bayctl.providers import magnum_ports

        cluster = self._cluster(ref)
        if cluster is None:
            raise CloudError(f"cluster {ref} not found")
        stack_ref = self._stack_ref(cluster)
        ports = magnum_ports.stack_ports(self.conn, stack_ref)
        slave_ips = [node.private_ip for node in nodes if node.role == SLAVE]
        master_ips = [node.private_ip for node in nodes if node.role == MASTER]
        cidr = request.container_cidr
        done = []
        if magnum_ports.allow_container_range(self.conn, ports, slave_ips, cidr, stack_ref):
            done.append(f"allowed {cidr} on the slaves' ports")
        if magnum_ports.open_zookeeper_to_slaves(self.conn, ports, master_ips, slave_ips):
            done.append(f"opened the master's ZooKeeper ({ZOOKEEPER_PORT}) to the slaves")
        return "; ".join(done) or None

    def delete(self, ref, wait=True, progress=None, timeout=None):
        cluster = self._cluster(ref)
        if cluster is None:
            return
        template_id = cluster.get("cluster_template_id") or cluster.get("baymodel_id")
        stack_ref = self._stack_ref(cluster) if cluster.get("stack_id") else None
        self.api.delete(cluster["uuid"])
        if not wait:
            return
        if stack_ref:
            wait_for_stack(self.conn, stack_ref, action="DELETE", progress=progress, timeout=timeout,
                           interval=self.poll_interval, what=f"cluster {cluster['name']}: stack",
                           provider=self.name)
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = self._backoff()
        resent_at = time.monotonic()
        while True:
            current = self.api.get_while_deleting(cluster)
            if current is None:
                break
            forgotten = not current["status"].startswith("DELETE")
            if forgotten and time.monotonic() - resent_at >= RESEND_DELETE_AFTER:
                # The stack is gone but Magnum's record says it was never asked: its periodic status
                # sync read the cluster before our DELETE and saved it after (seen with real Magnum
                # 10.0.0 on a cluster that had just failed). Ask again: its conductor destroys a
                # cluster whose stack is missing.
                LOG.info("cluster %s is %s after its delete: asking Magnum again", current["name"],
                         current["status"])
                self.api.delete(current["uuid"])
                resent_at = time.monotonic()
            self._check_deadline(deadline, timeout, current, "DELETE")
            self._sleep(backoff, deadline)
        self._delete_own_template(template_id)

    def _delete_own_template(self, template_id):
        """Delete the cluster template bayctl made for this bay, unless it is shared or still used."""
        if not template_id or self.shared_template:
            return
        self.api.delete_template_if_unused(template_id, TEMPLATE_PREFIX)

    def list(self):
        return [BayStatus(name=c["name"], id=c["uuid"], status=c["status"], provider=self.name,
                          reason=c.get("status_reason") or "") for c in self.api.list()]

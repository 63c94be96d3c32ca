"""The heat provider: bayctl's own templates (bayctl/share/heat_templates/) as one Heat stack per bay.

Works on any OpenStack cloud with Heat, Magnum or not. The templates use bayctl's own
resource type names (Bay::Server, ...); the environment files map them: on a cloud
`environments/openstack.yaml` (Nova/Neutron), in tests the stand-ins.
"""

import ipaddress
import json
import logging
import os

from bayctl.cloud.heat_client import heat, load_template
from bayctl.cloud.stacks import DEFAULT_INTERVAL, split_ref, wait_for_stack
from bayctl.errors import CloudError
from bayctl.model import MASTER, SLAVE, BayStatus, Node
from bayctl.providers.base import Provider, ProviderInfo

LOG = logging.getLogger(__name__)

TAG = "bayctl"
PROVIDER_TAG = "bayctl-heat"


def templates_dir():
    """The shipped templates (bayctl/share/heat_templates), or $BAYCTL_HEAT_TEMPLATES."""
    from bayctl.share import heat_templates_dir

    return os.environ.get("BAYCTL_HEAT_TEMPLATES") or heat_templates_dir()


def default_environments():
    """environments/openstack.yaml, then the files of $BAYCTL_HEAT_ENVIRONMENTS (colon-separated)
    layered over it, later ones winning: a site's parameter_defaults or resource mappings
    (the devstack plugin passes BAYCTL_HEAT_ENVIRONMENTS through)."""
    extra = [path for path in os.environ.get("BAYCTL_HEAT_ENVIRONMENTS", "").split(":") if path]
    for path in extra:
        if not os.path.isfile(path):  # fail closed: a bay without the mapping asked for is another bay
            raise CloudError(f"BAYCTL_HEAT_ENVIRONMENTS: {path}: no such file")
    return [os.path.join(templates_dir(), "environments", "openstack.yaml"), *extra]


def _one_line(error):
    text = getattr(error, "error", None)
    if isinstance(text, dict):  # heatclient's HTTPException.error: {"error": {"message": ...}}
        text = (text.get("error") or {}).get("message") or str(error)
    return str(text or error).strip().splitlines()[0][:400]


class HeatProvider(Provider):
    name = "heat"
    info = ProviderInfo()  # a cloud bay from bayctl's own image, no template beforehand

    def __init__(self, conn, environments=None, template=None, poll_interval=DEFAULT_INTERVAL):
        self.conn = conn
        base = templates_dir()
        self.template = template or os.path.join(base, "mesosbay.yaml")
        self.environments = list(environments or default_environments())
        self.poll_interval = poll_interval
        self.hc = heat(conn)

    # -- parameters ---------------------------------------------------------------------------

    def parameters(self, request, template):
        params = {"bay_name": request.name, "number_of_slaves": request.slaves,
                  "fixed_network_cidr": request.private_cidr, "container_cidr": request.container_cidr}
        for key, value in (("ssh_key_name", request.keypair), ("server_image", request.image),
                           ("master_flavor", request.master_flavor),
                           ("slave_flavor", request.slave_flavor or request.master_flavor),
                           ("external_network", request.external_network),
                           ("dns_nameserver", request.dns_nameserver)):
            if value is not None:
                params[key] = value
        known = set(template.get("parameters", {}))
        missing = [p for p in ("ssh_key_name", "server_image", "master_flavor", "external_network")
                   if p not in params]
        if missing:
            raise CloudError(f"bay {request.name}: the heat provider needs " + ", ".join(
                m.replace("ssh_key_name", "keypair").replace("server_image", "image") for m in missing))
        # Labels are passed through as template parameters of the same name (Magnum's label
        # names for the Mesos driver, e.g. mesos_slave_isolation). An unknown one is an error,
        # not silently dropped.
        unknown = sorted(set(request.labels) - known)
        if unknown:
            raise CloudError(f"bay {request.name}: label(s) {', '.join(unknown)} unknown to the heat "
                             f"templates (known: {', '.join(sorted(known - set(params)))})")
        params.update({k: str(v) for k, v in request.labels.items()})
        return params

    # -- Provider -----------------------------------------------------------------------------

    def _find(self, name):
        stacks = list(self.hc.stacks.list(filters={"name": name}))
        stacks = [s for s in stacks if s.stack_name == name and s.stack_status != "DELETE_COMPLETE"]
        return stacks[0] if stacks else None

    def create(self, request):
        from heatclient import exc as heat_exc

        existing = self._find(request.name)
        if existing is not None:
            LOG.info("stack %s exists (%s): resuming", request.name, existing.stack_status)
            return f"{existing.stack_name}/{existing.id}"
        template, files, environment = load_template(self.template, self.environments)
        params = self.parameters(request, template)
        try:
            created = self.hc.stacks.create(
                stack_name=request.name, template=template, files=files, environment=environment,
                parameters=params, timeout_mins=max(1, int(request.timeout // 60)),
                disable_rollback=True,  # keep a failed stack so it can be diagnosed
                tags=f"{TAG},{PROVIDER_TAG}")
        except heat_exc.HTTPConflict:  # created meanwhile by another run: resume that one
            existing = self._find(request.name)
            if existing is None:
                raise CloudError(f"stack {request.name}: Heat reports a conflict but no such stack") from None
            return f"{existing.stack_name}/{existing.id}"
        except heat_exc.HTTPException as e:
            raise CloudError(f"stack {request.name}: Heat refused it: {_one_line(e)}") from None
        return f"{request.name}/{created['stack']['id']}"

    def wait(self, ref, progress=None, timeout=None, action="CREATE"):
        return wait_for_stack(self.conn, ref, action=action, progress=progress, timeout=timeout,
                              interval=self.poll_interval, what="bay", provider=self.name)

    def outputs(self, ref):
        stack = self.hc.stacks.get(ref)
        if stack.stack_status != "CREATE_COMPLETE" and not stack.stack_status.endswith("UPDATE_COMPLETE"):
            raise CloudError(f"bay {stack.stack_name} is {stack.stack_status}: no nodes yet")
        return {o["output_key"]: o.get("output_value") for o in stack.outputs or []}

    def nodes(self, ref):
        name, _ = split_ref(ref)
        out = self.outputs(ref)
        nodes = [Node(name=f"{name}-master", role=MASTER, public_ip=out.get("mesos_master"),
                      private_ip=out.get("mesos_master_private"))]
        publics = out.get("mesos_slaves") or []
        privates = out.get("mesos_slaves_private") or []
        names = out.get("mesos_slaves_names") or [f"{name}-slave-{i}" for i in range(len(privates))]
        for i, private in enumerate(privates):
            nodes.append(Node(name=names[i], role=SLAVE, public_ip=publics[i] if i < len(publics) else None,
                              private_ip=private))
        return nodes

    def master_zookeeper(self, ref):
        """What the master's boot signalled (mesosmaster.yaml: its wait condition's data, JSON
        {signal id: "host:port"}), once its ZooKeeper answered; None where it stated nothing
        (an image without ZooKeeper, or templates older than this output)."""
        return stated_zookeeper(self.outputs(ref).get("master_zookeeper"))

    def delete(self, ref, wait=True, progress=None, timeout=None):
        from heatclient import exc as heat_exc

        if "/" not in ref:  # a bare name: look it up
            stack = self._find(ref)
            if stack is None:
                return
            ref = f"{stack.stack_name}/{stack.id}"
        try:
            self.hc.stacks.delete(ref)
        except heat_exc.HTTPNotFound:
            return
        if wait:
            self.wait(ref, progress=progress, timeout=timeout, action="DELETE")

    def list(self):
        # A stack Heat has just deleted can still be listed as DELETE_COMPLETE for a moment: gone.
        return [BayStatus(name=s.stack_name, id=s.id, status=s.stack_status, provider=self.name,
                          reason=s.stack_status_reason or "")
                for s in self.hc.stacks.list(tags=PROVIDER_TAG) if s.stack_status != "DELETE_COMPLETE"]


def stated_zookeeper(data):
    """host:port from a wait condition's data attribute ({id: data} as JSON), or None: a value
    that is not one address and port is no statement (the bay is then seeded over SSH)."""
    try:
        stated = json.loads(data) if isinstance(data, str) else data
    except ValueError:
        return None
    values = [v for v in (stated.values() if isinstance(stated, dict) else []) if isinstance(v, str) and v]
    if len(values) != 1:
        return None
    host, _, port = values[0].rpartition(":")
    try:
        ipaddress.ip_address(host)
        if not 0 < int(port) < 65536:
            return None
    except ValueError:
        return None
    return values[0]

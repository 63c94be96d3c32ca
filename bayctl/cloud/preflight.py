"""Pre-flight: can this cloud hold the bay? Checked before anything is created.

Every problem found is reported, one line each, in one CloudError: a user fixes them all
in one go instead of one per run. Nothing here creates or changes anything.
"""

import dataclasses
import logging

from bayctl.errors import CloudError

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class Check:
    name: str
    detail: str


class _Problems(list):
    def add(self, line):
        self.append(line)


def _short(error):
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__


def _bay_servers(request):
    return 1 + request.slaves


def run_preflight(conn, request, floating_ips_per_bay=None):
    """Check keypair, image (active, os_distro), flavors, external network and quotas.

    Returns the passed checks; raises CloudError listing every problem, one per line."""
    import openstack.exceptions as sdk_exc

    problems = _Problems()
    passed = []
    flavors = {}

    def guarded(what, check):
        try:
            check()
        except sdk_exc.SDKException as e:
            problems.add(f"{what}: cannot check ({_short(e)})")

    def keypair():
        if not request.keypair:
            problems.add("keypair: none given (--keypair)")
        elif conn.compute.find_keypair(request.keypair) is None:
            problems.add(f"keypair {request.keypair!r}: not found (openstack keypair create --public-key ... "
                         f"{request.keypair})")
        else:
            passed.append(Check("keypair", request.keypair))

    def image():
        if not request.image:
            problems.add("image: none given (--image)")
            return
        found = conn.image.find_image(request.image)
        if found is None:
            problems.add(f"image {request.image!r}: not found in Glance (bayctl image upload ...)")
        elif found.status != "active":
            problems.add(f"image {request.image!r}: is {found.status}, not active")
        elif not found.os_distro:
            problems.add(f"image {request.image!r}: has no os_distro property (Magnum picks its driver "
                         "by it; bayctl image upload sets it)")
        else:
            passed.append(Check("image", f"{found.name} ({found.id}, os_distro={found.os_distro})"))

    def flavor(role, name):
        def check():
            if not name:
                problems.add(f"{role} flavor: none given")
                return
            found = conn.compute.find_flavor(name)
            if found is None:
                problems.add(f"{role} flavor {name!r}: not found")
            else:
                flavors[role] = found
                passed.append(Check(f"{role} flavor", f"{found.name}: {found.vcpus} vCPU, {found.ram} MB"))
        return check

    def external_network():
        if not request.external_network:
            problems.add("external network: none given (--external-network)")
            return
        net = conn.network.find_network(request.external_network)
        if net is None:
            problems.add(f"external network {request.external_network!r}: not found")
        elif not net.is_router_external:
            problems.add(f"external network {request.external_network!r}: is not external (router:external "
                         "is false); floating IPs cannot come from it")
        else:
            passed.append(Check("external network", f"{net.name} ({net.id})"))

    guarded("keypair", keypair)
    guarded("image", image)
    guarded("master flavor", flavor("master", request.master_flavor))
    guarded("slave flavor", flavor("slave", request.slave_flavor or request.master_flavor))
    guarded("external network", external_network)
    guarded("compute quota", lambda: _compute_quota(conn, request, flavors, problems, passed))
    guarded("network quota", lambda: _network_quota(conn, request, problems, passed, floating_ips_per_bay))

    if problems:
        raise CloudError(f"pre-flight found {len(problems)} problem(s) for bay {request.name}; nothing was "
                         "created:\n  " + "\n  ".join(problems))
    return passed


def _headroom(label, needed, limit, used, problems, passed):
    if limit is None or limit < 0:  # -1: unlimited; None: not reported
        passed.append(Check(f"quota {label}", f"{needed} needed, unlimited"))
        return
    free = limit - (used or 0)
    if needed > free:
        problems.add(f"quota {label}: {needed} needed, {max(free, 0)} of {limit} free")
    else:
        passed.append(Check(f"quota {label}", f"{needed} needed, {free} of {limit} free"))


def _compute_quota(conn, request, flavors, problems, passed):
    limits = conn.compute.get_limits().absolute
    servers = _bay_servers(request)
    _headroom("servers", servers, limits.instances, limits.instances_used, problems, passed)
    master, slave = flavors.get("master"), flavors.get("slave")
    if master is not None and slave is not None:
        cores = master.vcpus + request.slaves * slave.vcpus
        ram = master.ram + request.slaves * slave.ram
        _headroom("cores", cores, limits.total_cores, limits.total_cores_used, problems, passed)
        _headroom("RAM (MB)", ram, limits.total_ram, limits.total_ram_used, problems, passed)


def _network_quota(conn, request, problems, passed, floating_ips_per_bay=None):
    details = conn.network.get_quota(conn.current_project_id, details=True)
    floating = _bay_servers(request) if floating_ips_per_bay is None else floating_ips_per_bay
    for label, attr, needed in (("floating IPs", "floating_ips", floating), ("networks", "networks", 1),
                                ("routers", "routers", 1), ("security groups", "security_groups", 2)):
        value = getattr(details, attr, None)
        if not isinstance(value, dict):
            continue  # the cloud does not report it
        _headroom(label, needed, value.get("limit"), value.get("used", 0) + value.get("reserved", 0),
                  problems, passed)

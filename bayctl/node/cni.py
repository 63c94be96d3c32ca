"""CNI plugin (spec 1.1: ADD, DEL, CHECK, VERSION, STATUS, GC) for Mesos' network/cni isolator.

The runtime calls the executable `bayctl-cni` with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
CNI_IFNAME, CNI_ARGS, CNI_PATH in the environment and the network config on stdin. The
container gets the same interface as with the Docker driver (links.py: ipvlan slave, or veth
pair on a per-network bridge where the kernel has no ipvlan), an address from bayctl's IPAM
(or from a delegated IPAM plugin such as host-local), and its IP -> group registered with the
node agent, which attaches the policy program before ADD returns.

Plugin config keys (besides cniVersion, name, type, ipam, args):
  group        the group of every container on this network (a policy name or a numeric tag)
  linkMode     auto | veth | ipvlan-l2 | ipvlan-l3 | ipvlan-l3s   (default auto)
  parent       ipvlan parent interface (default: the interface of the default route)
  agentSocket  the node agent's socket (default: the agent's default)
  stateDir     bayctl IPAM state (default /var/lib/bayctl/cni)
  linkPrefix   prefix of the node-side interface names (default "bay")
  agentTimeout seconds the node agent has to answer a call the plugin hands it, and DEL's
               word to it (default 30; cni_forward.py says what happens after)
The group of one container can come from Mesos instead: a NetworkInfo label `bayctl.group`
(or `group`), which Mesos passes in args["org.apache.mesos"]["network_info"]["labels"].
Precedence: the label, then `group`, then the network's name.

A fixed address (`podman run --ip`): runtimeConfig `ips` (the `ips` capability) or the CNI_ARGS
`IP=a.b.c.d`; with bayctl's IPAM it is reserved if free and in the subnet, else ADD fails.
DEL frees the address and the links even when the agent is down (the agent drops endpoints
whose interface is gone when it is back); GC releases what attachments not in
`cni.dev/valid-attachments` still hold.

The environment, version negotiation and error JSON are cni_skel.py's (as the reference
plugins' pkg/skel); attaching the container is attach.py's, shared with the Docker driver;
this file is the config, the addresses and the verbs. The executable first offers the call to
the node agent (cni_forward.py -> POST /v1/cni -> cni_service.py), which runs these same verbs
with everything already loaded; it runs them itself when the agent cannot.
"""

import contextlib
import contextvars
import ipaddress
import json
import os
import subprocess
import sys

from bayctl.errors import BayctlError, NodeError
from bayctl.node import link_modes
from bayctl.node.cni_forward import agent_timeout
from bayctl.node.cni_skel import (
    INTERNAL_ERROR,
    INVALID_CONFIG,
    IO_FAILURE,
    PLUGIN_NOT_AVAILABLE,
    UNKNOWN_CONTAINER,
    CniError,
    Verbs,
    bad_config,
    plugin_main,
)
from bayctl.node.cni_skel import Invocation as SkelInvocation
from bayctl.node.cni_skel import run as skel_run
from bayctl.node.protocol import ENV_SOCKET

# The runtime starts one process per call (50 at once when 50 containers start), so this
# module imports only what every call needs: the netlink library (links, attach), the agent's
# client and the IPAM are imported by the verbs that use them (tests/unit/test_cni_imports.py).

PLUGIN_KEYS = {"cniVersion", "name", "type", "ipam", "args", "prevResult", "runtimeConfig", "capabilities",
               "dns", "group", "linkMode", "parent", "agentSocket", "stateDir", "linkPrefix", "agentTimeout"}
GROUP_LABELS = ("bayctl.group", "group")
DEFAULT_STATE_DIR = "/var/lib/bayctl/cni"
VALID_ATTACHMENTS = "cni.dev/valid-attachments"  # GC's list of {containerID, ifname} to keep

# This plugin's own error codes (100+).
LINK_FAILURE = 100
AGENT_FAILURE = 101
CHECK_FAILED = 102


def error_codes():
    """Exception type -> this plugin's CNI code, the most specific first (needed only once a
    verb failed, when what it raises is imported anyway)."""
    from bayctl.node.attach import GroupRejected
    from bayctl.node.client import AgentError

    return {
        GroupRejected: INVALID_CONFIG,
        AgentError: AGENT_FAILURE,
        NodeError: LINK_FAILURE,  # links, namespaces, addresses
        BayctlError: INTERNAL_ERROR,
    }


def __getattr__(name):
    if name == "ERROR_CODES":  # the table as a value (tests classify through it)
        return error_codes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Invocation(SkelInvocation):
    """One call of bayctl-cni: the skeleton's environment and config, plus this plugin's keys."""

    def check_config(self):
        config = self.config
        unknown = sorted(set(config) - PLUGIN_KEYS)
        if self.command == "GC":
            unknown = [key for key in unknown if key != VALID_ATTACHMENTS]
        if unknown:
            raise bad_config(f"unknown key {unknown[0]!r}",
                           f"known keys: {', '.join(sorted(PLUGIN_KEYS))}")
        if not isinstance(config.get("name"), str) or not config["name"]:
            raise bad_config("'name' (the network's name) is required")
        mode = config.get("linkMode", link_modes.AUTO)
        if mode not in (link_modes.AUTO, *link_modes.MODES):
            raise bad_config(f"linkMode {mode!r} is not one of "
                                           f"{', '.join((link_modes.AUTO, *link_modes.MODES))}")
        ipam = config.get("ipam")
        if not isinstance(ipam, dict) or not ipam.get("type"):
            raise bad_config("'ipam' with a 'type' is required "
                                           '(e.g. {"type": "bayctl", "subnet": "10.20.0.0/16"})')
        if ipam["type"] == "bayctl":
            try:
                network = ipaddress.ip_network(ipam.get("subnet", ""), strict=True)
            except ValueError as e:
                raise bad_config(f"ipam.subnet: {e}") from None
            if network.version != 4 or network.num_addresses < 4:
                raise bad_config(f"ipam.subnet {network} must be IPv4, /30 or larger")
            if ipam.get("gateway"):
                try:
                    gateway = ipaddress.ip_address(ipam["gateway"])
                except ValueError as e:
                    raise bad_config(f"ipam.gateway: {e}") from None
                if gateway not in network:
                    raise bad_config(f"ipam.gateway {gateway} is outside {network}")
        prefix = config.get("linkPrefix", "bay")
        if not isinstance(prefix, str) or not prefix.isalnum() or not 0 < len(prefix) <= 5:
            raise bad_config(f"linkPrefix {prefix!r} must be 1-5 letters or digits")
        if agent_timeout(config, default=None) is None:
            raise bad_config(f"agentTimeout {config['agentTimeout']!r} must be a number of seconds, "
                             "more than 0 and at most 600")

    # -- derived -----------------------------------------------------------------------------

    @property
    def group(self):
        from bayctl.node import attach

        labels = ((((self.config.get("args") or {}).get("org.apache.mesos") or {}).get("network_info") or {})
                  .get("labels") or {}).get("labels") or []
        for wanted in GROUP_LABELS:
            for label in labels:
                if isinstance(label, dict) and label.get("key") == wanted and label.get("value"):
                    return attach.group_value(label["value"])
        if self.config.get("group") not in (None, ""):
            return attach.group_value(self.config["group"])
        return self.config["name"]

    @property
    def requested_ips(self):
        """Addresses the runtime asks for: runtimeConfig `ips` (capability) or CNI_ARGS `IP`."""
        wanted = list((self.config.get("runtimeConfig") or {}).get("ips") or [])
        for pair in self.environ.get("CNI_ARGS", "").split(";"):
            key, _, value = pair.partition("=")
            if key.strip() == "IP" and value.strip():
                wanted.extend(v.strip() for v in value.split(",") if v.strip())
        ips = []
        for text in wanted:
            try:
                ips.append(ipaddress.ip_interface(str(text)).ip)
            except ValueError:
                raise CniError(INVALID_CONFIG, f"requested address {text!r} is not an IP address") from None
        v4 = sorted({ip for ip in ips if ip.version == 4})
        if len(v4) > 1:
            raise CniError(INVALID_CONFIG, f"requested {len(v4)} IPv4 addresses ({', '.join(map(str, v4))}); "
                                           "one interface takes one")
        return [str(ip) for ip in v4]

    @property
    def owner(self):
        return f"{self.container_id}/{self.ifname}"

    @property
    def link_prefix(self):
        return self.config.get("linkPrefix", "bay")

    @property
    def names(self):
        """(the network's node-side link, this attachment's link names)."""
        from bayctl.node import attach

        return (attach.network_link_name(self.link_prefix, self.config["name"]),
                attach.endpoint_names(self.link_prefix, self.owner))

    def agent(self, timeout=None):
        from bayctl.node.client import AgentClient

        # The runtime's environment, as given to this call (the node agent may run the call).
        socket_path = self.config.get("agentSocket") or self.environ.get(ENV_SOCKET) or None
        return AgentClient(socket_path) if timeout is None else AgentClient(socket_path, timeout=timeout)


# -- addresses: bayctl's IPAM or a delegated plugin --------------------------------------------------

class BayctlAddresses:
    def __init__(self, inv):
        from bayctl.node.ipam import Ipam

        self.inv = inv
        ipam = inv.config["ipam"]
        self.subnet = str(ipaddress.ip_network(ipam["subnet"]))
        self.ipam = Ipam(os.path.join(inv.config.get("stateDir", DEFAULT_STATE_DIR), "ipam.json"))
        network = ipaddress.ip_network(self.subnet)
        self.gateway = str(ipam.get("gateway") or next(network.hosts()))

    def add(self):
        pool = self.ipam.create_pool(self.subnet, reuse=True)
        if self.gateway not in self.ipam.addresses(pool):
            try:
                self.ipam.allocate(pool, self.gateway, owner="gateway")
            except NodeError:
                pass  # a concurrent ADD reserved it first
        held = self.ipam.owned(pool, self.inv.owner)
        wanted = self.inv.requested_ips
        if wanted and held and held[0].split("/")[0] != wanted[0]:
            raise CniError(INVALID_CONFIG, f"requested address {wanted[0]}: this attachment already holds "
                                           f"{held[0]}")
        if held:
            return held[0], self.gateway
        if wanted:
            ip = ipaddress.ip_address(wanted[0])
            network = ipaddress.ip_network(self.subnet)
            if ip not in network or ip in (network.network_address, network.broadcast_address):
                raise CniError(INVALID_CONFIG, f"requested address {ip} is not a host address of {network}")
            owner = self.ipam.addresses(pool).get(str(ip))
            if owner is not None:
                raise CniError(INVALID_CONFIG, f"requested address {ip} is already in use in {network}",
                               f"held by {owner}")
            try:
                return self.ipam.allocate(pool, str(ip), owner=self.inv.owner), self.gateway
            except NodeError as e:  # taken between the look and the reservation
                raise CniError(INVALID_CONFIG, f"requested address {ip}: {e}") from None
        return self.ipam.allocate(pool, owner=self.inv.owner), self.gateway

    def delete(self):
        if self.subnet in self.ipam.pools():
            return self.ipam.release_owner(self.subnet, self.inv.owner)
        return []

    def held(self):
        if self.subnet not in self.ipam.pools():
            return []
        return [a.split("/")[0] for a in self.ipam.owned(self.subnet, self.inv.owner)]

    def collect(self, keep):
        """Release every address of this network whose owner is not in `keep`; {owner: [ip]}."""
        if self.subnet not in self.ipam.pools():
            return {}
        return self.ipam.release_owners_except(self.subnet, keep | {"gateway"})


class DelegatedAddresses:
    """Runs the IPAM plugin named in ipam.type from CNI_PATH, as the spec's delegation does."""

    def __init__(self, inv):
        self.inv = inv
        self.type = inv.config["ipam"]["type"]

    def _run(self, command):
        for directory in self.inv.cni_path:
            path = os.path.join(directory, self.type)
            if os.access(path, os.X_OK):
                break
        else:
            raise CniError(INVALID_CONFIG, f"IPAM plugin {self.type!r} not found in CNI_PATH")
        env = dict(self.inv.environ, CNI_COMMAND=command)
        result = subprocess.run([path], input=self.inv.raw_config.encode(), capture_output=True, env=env,
                                timeout=60)
        try:
            answer = json.loads(result.stdout or b"{}")
        except ValueError:
            answer = {}
        if result.returncode != 0:
            reason = answer.get("msg") or result.stderr.decode(errors="replace").strip()
            raise CniError(answer.get("code", IO_FAILURE), f"IPAM plugin {self.type}: {reason}")
        return answer

    def add(self):
        answer = self._run("ADD")
        ips = [ip for ip in answer.get("ips", []) if ipaddress.ip_interface(ip["address"]).version == 4]
        if not ips:
            raise CniError(INVALID_CONFIG, f"IPAM plugin {self.type} returned no IPv4 address")
        return ips[0]["address"], ips[0].get("gateway")

    def delete(self):
        self._run("DEL")
        return []

    def held(self):
        prev = self.inv.config.get("prevResult") or {}
        return [ip["address"].split("/")[0] for ip in prev.get("ips", [])]

    def collect(self, keep):
        # The delegated plugin keeps its own store; it gets the same GC (spec 1.1 delegation).
        # One older than 1.1 knows no GC: that is no reason to fail the runtime's GC.
        try:
            self._run("GC")
        except CniError as e:
            _log(f"GC: IPAM plugin {self.type} did not collect: {e.msg}")
        return {}


def _addresses(inv):
    return BayctlAddresses(inv) if inv.config["ipam"]["type"] == "bayctl" else DelegatedAddresses(inv)


# -- the verbs -------------------------------------------------------------------------------------

def cmd_add(inv):
    from bayctl.node import attach, links

    if not os.path.exists(inv.netns):
        raise CniError(UNKNOWN_CONTAINER, f"network namespace {inv.netns} does not exist")
    mode, parent = attach.link_mode(inv.config.get("linkMode", links.AUTO), inv.config.get("parent"))
    network_link, names = inv.names
    group = inv.group
    agent = inv.agent()
    attach.check_group(agent, group)
    addresses = _addresses(inv)
    # (a delegated IPAM plugin reads the same runtimeConfig / CNI_ARGS; its answer is checked below)
    address, gateway = addresses.add()
    ip = address.split("/")[0]
    if inv.requested_ips and ip != inv.requested_ips[0]:
        addresses.delete()
        raise CniError(INVALID_CONFIG, f"requested address {inv.requested_ips[0]} was not given "
                                       f"(IPAM {inv.config['ipam']['type']} answered {address})")
    subnet = ipaddress.ip_interface(address).network
    try:
        if gateway:
            links.create_network_link(mode, network_link, f"{gateway}/{subnet.prefixlen}", parent)
        attached = attach.attach(agent, mode=mode, names=names, network_link=network_link, parent=parent,
                                 ip=ip, group=group,
                                 placement=attach.Placement(inv.netns, inv.ifname, address, gateway))
    except BaseException:
        addresses.delete()  # attach undid its own part
        raise
    interfaces = []
    if attached.host_end:
        interfaces.append({"name": attached.host_end, "mac": _host_mac(attached.host_end)})
    interfaces.append({"name": inv.ifname, "mac": attached.container["mac"], "sandbox": inv.netns})
    ip_entry = {"address": address, "interface": len(interfaces) - 1}
    if gateway:
        ip_entry["gateway"] = gateway
    if inv.version.startswith("0."):
        ip_entry["version"] = "4"
    result = {"cniVersion": inv.version, "interfaces": interfaces, "ips": [ip_entry], "dns": {}}
    if gateway:
        result["routes"] = [{"dst": "0.0.0.0/0", "gw": gateway}]
    return result


def _host_mac(ifname):
    from pyroute2 import IPRoute

    with IPRoute() as ip:
        found = ip.link_lookup(ifname=ifname)
        return ip.get_links(found[0])[0].get_attr("IFLA_ADDRESS") if found else ""


def cmd_del(inv):
    """Remove everything ADD made; whatever is already gone is fine (DEL may be called twice).

    DEL succeeds whatever the agent's state: runtimes (podman) never retry a failed DEL, so an
    error here would leak the address and the link for good. The agent is told when it can be;
    when it cannot, the links are gone all the same and the agent drops the endpoint, whose
    interface no longer exists, once it is back.
    """
    from bayctl.node import links

    _, names = inv.names
    addresses = _addresses(inv)
    held = addresses.held()
    _forget_endpoints(inv, held, f"{inv.owner} deleted")
    links.delete_in_netns(inv.netns, inv.ifname)
    links.delete_endpoint_link(names)
    addresses.delete()
    return None


def _forget_endpoints(inv, ips, why):
    if not ips:
        return
    try:
        # No longer than agentTimeout: the agent drops an endpoint whose interface is gone by
        # itself, so a hung one must not hold the runtime's DEL.
        agent = inv.agent(timeout=agent_timeout(inv.config))
        for ip in ips:
            agent.remove_endpoint(ip)
    except NodeError as e:
        _log(f"{why}: node agent not told to remove {', '.join(ips)} ({e}); it drops endpoints whose "
             "interface is gone when it is back")


def _log(message):
    line = f"bayctl-cni: {' '.join(message.split())}\n"
    sink = _LOG_SINK.get()
    if sink is not None:
        sink.append(line)
    else:
        sys.stderr.write(line)


# Where _log writes when the agent runs the call (cni_service.py): the plugin writes it out.
_LOG_SINK = contextvars.ContextVar("bayctl_cni_log", default=None)


@contextlib.contextmanager
def captured_log():
    """Collect this thread's _log lines (the agent runs many calls at once) instead of stderr."""
    lines = []
    token = _LOG_SINK.set(lines)
    try:
        yield lines
    finally:
        _LOG_SINK.reset(token)


def cmd_gc(inv):
    """Spec 1.1 GC: release what attachments not in cni.dev/valid-attachments still hold."""
    valid = inv.config.get(VALID_ATTACHMENTS)
    if valid is None:  # fail closed: without the list every attachment would look stale
        raise bad_config(f"GC needs {VALID_ATTACHMENTS}")
    if not isinstance(valid, list) or not all(isinstance(a, dict) for a in valid):
        raise bad_config(f"{VALID_ATTACHMENTS} must be a list of {{containerID, ifname}}")
    from bayctl.node import attach, links

    keep = {f"{a.get('containerID', '')}/{a.get('ifname', '')}" for a in valid}
    addresses = _addresses(inv)
    released = addresses.collect(keep)
    for owner, ips in sorted(released.items()):
        _forget_endpoints(inv, ips, f"GC of {owner}")
        # The node end of a veth pair (or a leftover slave) of the stale attachment, if any.
        links.delete_endpoint_link(attach.endpoint_names(inv.link_prefix, owner))
        _log(f"GC: released {', '.join(ips)} of {owner} (not a valid attachment)")
    return None


def cmd_check(inv):
    from bayctl.node import links

    prev = inv.config.get("prevResult")
    if not isinstance(prev, dict) or not prev.get("ips"):
        raise CniError(INVALID_CONFIG, "CHECK needs prevResult with the ips ADD returned")
    if not os.path.exists(inv.netns):
        raise CniError(UNKNOWN_CONTAINER, f"network namespace {inv.netns} does not exist")
    want = {ip["address"] for ip in prev["ips"]}
    seen = links.describe_in_netns(inv.netns, inv.ifname)
    if seen is None:
        raise CniError(CHECK_FAILED, f"interface {inv.ifname} is missing from {inv.netns}")
    if not seen["up"]:
        raise CniError(CHECK_FAILED, f"interface {inv.ifname} in {inv.netns} is down")
    missing = sorted(want - set(seen["addresses"]))
    if missing:
        raise CniError(CHECK_FAILED, f"interface {inv.ifname} lacks address {missing[0]}")
    _, names = inv.names
    if seen["kind"] == "veth" and not links.link_exists(names.host):
        raise CniError(CHECK_FAILED, f"the node end {names.host} of {inv.ifname}'s veth pair is missing")
    try:
        registered = {e["ip"]: e for e in inv.agent().endpoints()}
    except NodeError as e:
        raise CniError(AGENT_FAILURE, f"node agent: {e}") from None
    group = inv.group
    for address in sorted(want):
        ip = address.split("/")[0]
        entry = registered.get(ip)
        if entry is None:
            raise CniError(CHECK_FAILED, f"{ip} is not registered with the node agent")
        if group not in (entry.get("group"), entry.get("tag")):
            actual = entry.get("group") or entry.get("tag")
            raise CniError(CHECK_FAILED, f"{ip} is registered in group {actual}, not {group}")
        if not entry.get("ifname"):
            raise CniError(CHECK_FAILED, f"{ip} has no policy program attached")
    return None


def cmd_status(inv):
    try:
        health = inv.agent().health()
    except NodeError as e:
        raise CniError(PLUGIN_NOT_AVAILABLE, f"node agent: {e}") from None
    if not health.get("ok"):
        raise CniError(PLUGIN_NOT_AVAILABLE, "node agent is not healthy")
    return None


VERBS = Verbs(add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status, gc=cmd_gc)


def run(environ, stdin_text):
    """(stdout document or None, exit status). Never raises."""
    return skel_run(environ, stdin_text, VERBS, invocation=Invocation, error_codes=error_codes)


def main():
    from bayctl.node.cni_forward import forward

    return plugin_main(VERBS, forward=forward, invocation=Invocation, error_codes=error_codes)


if __name__ == "__main__":
    sys.exit(main())

"""libnetwork remote network driver + remote IPAM driver: containers in groups, for dockerd.

    docker network create -d bayctl --ipam-driver bayctl -o bayctl.group=web \
        --subnet 10.10.0.0/16 web
    docker run --network web ...                                  # group web
    docker run --network name=web,driver-opt=bayctl.group=db ...  # group db on the same network

Network options (`-o`, delivered in CreateNetwork's com.docker.network.generic):
  bayctl.group=NAME|TAG     the group of the network's containers
  bayctl.group-from=expose  the group is the container's single exposed port (`--expose 100`)
  bayctl.mode=auto|veth|ipvlan-l2|ipvlan-l3|ipvlan-l3s   (default: the plugin's --link-mode)
  bayctl.parent=IFACE       the ipvlan parent (default: the plugin's --parent, else the
                            interface of the default route)
Endpoint options (`--driver-opt`, top-level keys of CreateEndpoint's Options):
  bayctl.group=NAME|TAG     overrides the network's group for this container

Links come from links.py; the IP -> group registration (and the datapath attach) from the node
agent. Docker does not replay CreateNetwork after a plugin restart, so networks and endpoints
are kept in a state file next to the IPAM's.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time

from bayctl.errors import BayctlError, NodeError
from bayctl.node import attach, links
from bayctl.node.docker_protocol import PluginServer
from bayctl.node.ipam import Ipam
from bayctl.node.statefile import StateFile

LOG = logging.getLogger(__name__)

GENERIC = "com.docker.network.generic"
EXPOSED_PORTS = "com.docker.network.endpoint.exposedports"
GATEWAY_REQUEST = "com.docker.network.gateway"
NETWORK_OPTIONS = {"bayctl.group", "bayctl.group-from", "bayctl.mode", "bayctl.parent"}
ENDPOINT_OPTIONS = {"bayctl.group"}
ADDRESS_SPACE = "bayctl"
# How long an ipvlan slave may take to appear in the container's namespace after Join.
ATTACH_WAIT_SECONDS = 120.0


def _agent_client(socket_path):
    # Imported late: the plugin's own code (and `--help`) must not need the agent module loaded.
    from bayctl.node.client import AgentClient

    return AgentClient(socket_path) if socket_path else AgentClient()


class DockerPlugin:
    """The handlers of both drivers; `routes()` maps protocol paths to them."""

    def __init__(self, *, state_dir, agent_socket=None, link_mode=links.AUTO, parent=None,
                 link_prefix="bay", agent=None):
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        self.ipam = Ipam(os.path.join(state_dir, "ipam.json"))
        self.state = StateFile(os.path.join(state_dir, "docker.json"),
                               default={"networks": {}, "endpoints": {}})
        self.agent = agent or _agent_client(agent_socket)
        self.link_mode = link_mode
        self.parent = parent
        self.link_prefix = link_prefix
        links.LinkNames(link_prefix, "0")  # validates the prefix now rather than at the first Join

    def routes(self):
        ok = lambda request: {}  # noqa: E731 - calls libnetwork makes that need no work here
        return {
            "/Plugin.Activate": lambda request: {"Implements": ["NetworkDriver", "IpamDriver"]},
            "/NetworkDriver.GetCapabilities": lambda request: {"Scope": "local",
                                                               "ConnectivityScope": "local"},
            "/NetworkDriver.CreateNetwork": self.create_network,
            "/NetworkDriver.DeleteNetwork": self.delete_network,
            "/NetworkDriver.CreateEndpoint": self.create_endpoint,
            "/NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "/NetworkDriver.Join": self.join,
            "/NetworkDriver.Leave": self.leave,
            "/NetworkDriver.EndpointOperInfo": self.endpoint_info,
            "/NetworkDriver.ProgramExternalConnectivity": ok,
            "/NetworkDriver.RevokeExternalConnectivity": ok,
            "/NetworkDriver.DiscoverNew": ok,
            "/NetworkDriver.DiscoverDelete": ok,
            "/NetworkDriver.AllocateNetwork": ok,
            "/NetworkDriver.FreeNetwork": ok,
            "/IpamDriver.GetCapabilities": lambda request: {"RequiresMACAddress": False,
                                                             "RequiresRequestReplay": False},
            "/IpamDriver.GetDefaultAddressSpaces": lambda request: {
                "LocalDefaultAddressSpace": ADDRESS_SPACE, "GlobalDefaultAddressSpace": ADDRESS_SPACE},
            "/IpamDriver.RequestPool": self.request_pool,
            "/IpamDriver.ReleasePool": self.release_pool,
            "/IpamDriver.RequestAddress": self.request_address,
            "/IpamDriver.ReleaseAddress": self.release_address,
        }

    # -- IPAM ---------------------------------------------------------------------------------

    def request_pool(self, request):
        if request.get("V6"):
            raise NodeError("bayctl IPAM: IPv6 pools are not supported (drop --ipv6)")
        if not request.get("Pool"):
            raise NodeError("bayctl IPAM needs an explicit subnet (docker network create --subnet CIDR)")
        if request.get("SubPool") and request["SubPool"] != request["Pool"]:
            raise NodeError("bayctl IPAM: --ip-range is not supported (give the whole --subnet)")
        pool_id = self.ipam.create_pool(request["Pool"])
        return {"PoolID": pool_id, "Pool": self.ipam.pool(pool_id)["subnet"], "Data": {}}

    def release_pool(self, request):
        self.ipam.release_pool(request.get("PoolID", ""))
        return {}

    def request_address(self, request):
        options = request.get("Options") or {}
        owner = "gateway" if options.get("RequestAddressType") == GATEWAY_REQUEST else "container"
        address = self.ipam.allocate(request.get("PoolID", ""), request.get("Address") or None, owner=owner)
        return {"Address": address, "Data": {}}

    def release_address(self, request):
        self.ipam.release(request.get("PoolID", ""), request.get("Address", ""))
        return {}

    # -- networks -----------------------------------------------------------------------------

    def create_network(self, request):
        network_id = request["NetworkID"]
        options = (request.get("Options") or {}).get(GENERIC) or {}
        unknown = sorted(k for k in options if k.startswith("bayctl.") and k not in NETWORK_OPTIONS)
        if unknown:
            known = ", ".join(sorted(NETWORK_OPTIONS))
            raise NodeError(f"unknown network option {unknown[0]} (known: {known})")
        group_from = options.get("bayctl.group-from")
        if group_from not in (None, "expose"):
            raise NodeError(f"bayctl.group-from={group_from}: the only source is 'expose'")
        if group_from and options.get("bayctl.group"):
            raise NodeError("give either bayctl.group or bayctl.group-from, not both")
        ipv4 = request.get("IPv4Data") or []
        if len(ipv4) != 1 or not ipv4[0].get("Gateway"):
            raise NodeError("a bayctl network needs exactly one IPv4 subnet with a gateway")
        if request.get("IPv6Data"):
            raise NodeError("bayctl networks are IPv4 only (drop --ipv6)")
        mode, parent = attach.link_mode(options.get("bayctl.mode", self.link_mode),
                                        options.get("bayctl.parent") or self.parent)
        names = links.LinkNames(self.link_prefix, network_id)
        network = {
            "group": attach.group_value(options.get("bayctl.group")),
            "group_from": group_from,
            "mode": mode,
            "parent": parent,
            "subnet": ipv4[0]["Pool"],
            "gateway": ipv4[0]["Gateway"],
            "link": names.network,
        }
        links.create_network_link(mode, names.network, network["gateway"], parent)
        with self.state.update() as state:
            state["networks"][network_id] = network
        LOG.info("network %s: %s links (%s), group %s", network_id[:12], mode,
                 "ipvlan available" if links.is_ipvlan(mode) else "veth", network["group"] or group_from)
        return {}

    def delete_network(self, request):
        network_id = request["NetworkID"]
        with self.state.update() as state:
            network = state["networks"].pop(network_id, None)
        if network:
            links.delete_link(network["link"])
        return {}

    def _network(self, state, network_id):
        network = state["networks"].get(network_id)
        if network is None:
            raise NodeError(f"network {network_id[:12]} is unknown to bayctl (its state was lost: "
                            "remove and re-create the network)")
        return network

    # -- endpoints ----------------------------------------------------------------------------

    def create_endpoint(self, request):
        network_id, endpoint_id = request["NetworkID"], request["EndpointID"]
        options = request.get("Options") or {}
        interface = request.get("Interface") or {}
        network = self._network(self.state.read(), network_id)
        if not interface.get("Address"):
            raise NodeError("bayctl needs docker to assign the address "
                            "(use --ipam-driver bayctl or another IPAM)")
        group = self._endpoint_group(network, options)
        attach.check_group(self.agent, group)  # fails `docker run` with the group's name
        endpoint = {"network": network_id, "address": interface["Address"],
                    "ip": interface["Address"].split("/")[0], "group": group, "sandbox": None}
        with self.state.update() as state:
            self._network(state, network_id)
            state["endpoints"][endpoint_id] = endpoint
        return {}

    def _endpoint_group(self, network, options):
        unknown = sorted(k for k in options if k.startswith("bayctl.") and k not in ENDPOINT_OPTIONS)
        if unknown:
            known = ", ".join(sorted(ENDPOINT_OPTIONS))
            raise NodeError(f"unknown endpoint option {unknown[0]} (known: {known})")
        if options.get("bayctl.group"):
            return attach.group_value(options["bayctl.group"])
        if network["group_from"] == "expose":
            ports = options.get(EXPOSED_PORTS) or []
            numbers = sorted({int(p.get("Port", 0)) for p in ports})
            if len(numbers) != 1:
                raise NodeError("this network takes the group from the exposed port (bayctl.group-from="
                                "expose): the container must expose exactly one port, it exposes "
                                f"{numbers or 'none'}")
            return numbers[0]
        if network["group"] is None:
            raise NodeError("no group for this container: create the network with -o bayctl.group=NAME "
                            "or connect with --driver-opt bayctl.group=NAME")
        return network["group"]

    def join(self, request):
        network_id, endpoint_id = request["NetworkID"], request["EndpointID"]
        sandbox = request.get("SandboxKey")
        state = self.state.read()
        network = self._network(state, network_id)
        endpoint = state["endpoints"].get(endpoint_id)
        if endpoint is None:
            raise NodeError(f"endpoint {endpoint_id[:12]} is unknown to bayctl")
        names = links.LinkNames(self.link_prefix, endpoint_id)
        attached = attach.attach(self.agent, mode=network["mode"], names=names, network_link=network["link"],
                                 parent=network["parent"], ip=endpoint["ip"], group=endpoint["group"])
        if not attached.host_end and sandbox:
            # ipvlan: the slave's own hook can only go on once docker has moved it into the container.
            threading.Thread(target=self._attach_when_moved, daemon=True,
                             args=(endpoint["ip"], endpoint["group"], sandbox)).start()
        with self.state.update() as state:
            if endpoint_id in state["endpoints"]:
                state["endpoints"][endpoint_id]["sandbox"] = sandbox
        gateway = network["gateway"].split("/")[0]
        return {"InterfaceName": {"SrcName": names.container, "DstPrefix": "eth"}, "Gateway": gateway,
                "DisableGatewayService": False}

    def _attach_when_moved(self, ip, group, sandbox):
        deadline = time.monotonic() + ATTACH_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                ifname = links.find_by_address(sandbox, ip)
            except NodeError:
                ifname = None
            if ifname:
                try:
                    # Re-registering the same IP with an interface attaches it (agent replaces).
                    self.agent.add_endpoint(ip, group, ifname=ifname, netns=sandbox)
                    LOG.info("datapath attached to %s in %s (%s)", ifname, sandbox, ip)
                except BayctlError as e:
                    LOG.error("attaching the datapath to %s in %s failed: %s", ifname, sandbox, e)
                return
            time.sleep(0.02)
        LOG.error("%s never appeared in %s: its ipvlan slave has no policy hook of its own", ip, sandbox)

    def _cleanup(self, endpoint_id, endpoint):
        links.delete_endpoint_link(links.LinkNames(self.link_prefix, endpoint_id))
        if endpoint:
            self.agent.remove_endpoint(endpoint["ip"])

    def leave(self, request):
        endpoint_id = request["EndpointID"]
        endpoint = self.state.read()["endpoints"].get(endpoint_id)
        self._cleanup(endpoint_id, endpoint)
        return {}

    def delete_endpoint(self, request):
        endpoint_id = request["EndpointID"]
        with self.state.update() as state:
            endpoint = state["endpoints"].pop(endpoint_id, None)
        self._cleanup(endpoint_id, endpoint)
        return {}

    def endpoint_info(self, request):
        endpoint = self.state.read()["endpoints"].get(request.get("EndpointID", ""))
        if endpoint is None:
            return {"Value": {}}
        return {"Value": {"bayctl.group": str(endpoint["group"]), "bayctl.ip": endpoint["ip"]}}


# -- running it -------------------------------------------------------------------------------

def add_arguments(parser):
    parser.add_argument("--name", default="bayctl",
                        help="plugin name: the socket is PLUGIN_DIR/NAME.sock and `docker network "
                             "create -d NAME --ipam-driver NAME` selects it (default: bayctl)")
    parser.add_argument("--plugin-dir", default="/run/docker/plugins",
                        help="where dockerd discovers plugin sockets (default: /run/docker/plugins)")
    parser.add_argument("--state-dir", default="/var/lib/bayctl/docker",
                        help="networks, endpoints and address reservations (default: /var/lib/bayctl/docker)")
    parser.add_argument("--agent-socket", default=None,
                        help="the node agent's socket (default: $BAYCTL_AGENT_SOCKET or the agent's default)")
    parser.add_argument("--link-mode", default=links.AUTO, choices=(links.AUTO, *links.MODES),
                        help="container interfaces: ipvlan-l2/l3/l3s, veth, or auto = ipvlan-l2 where "
                             "the kernel has ipvlan, else veth (default: auto)")
    parser.add_argument("--parent", default=None,
                        help="ipvlan parent interface (default: the interface of the default route)")
    parser.add_argument("--link-prefix", default="bay",
                        help="prefix of the interface names the plugin creates "
                             "(1-5 characters; default: bay)")
    return parser


def serve(args):
    """Run the plugin until SIGTERM/SIGINT; returns the exit status."""
    plugin = DockerPlugin(state_dir=args.state_dir, agent_socket=args.agent_socket, link_mode=args.link_mode,
                          parent=args.parent, link_prefix=args.link_prefix)
    socket_path = os.path.join(args.plugin_dir, f"{args.name}.sock")
    # Claimed before anything else is probed: a second plugin on a live socket touches nothing.
    server = PluginServer(socket_path, plugin.routes())

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if args.link_mode == links.AUTO:
            parent = args.parent or links.default_parent()
            chosen = "ipvlan-l2 (the kernel has ipvlan)" if links.ipvlan_supported(parent) else \
                "veth (this kernel has no ipvlan)"
            LOG.warning("link mode auto: %s", chosen)
        LOG.warning("bayctl docker plugin %s serving on %s", args.name, socket_path)
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(
        prog="bayctl-docker-plugin", description="bayctl's Docker network + IPAM driver"))
    parser.add_argument("--debug", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("bayctl").setLevel(logging.DEBUG if args.debug else logging.INFO)
    try:
        return serve(args)
    except BayctlError as e:
        print(f"bayctl-docker-plugin: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

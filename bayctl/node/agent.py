"""The node agent: owns the datapath on one node and serves its API on a root-only unix socket.

What it guarantees:
- Enforcement never depends on the agent being alive: maps and the tc program are pinned
  and attached by the datapath; the agent exits (SIGTERM, crash, kill -9) leaving them in
  place, and a restarted agent reuses the pins.
- The last applied policy and the registered endpoints are kept in the state dir (atomic
  writes) and re-applied at start, so a reboot (pins gone) restores enforcement too.
  With no saved policy the node denies everything (fail closed).
- A policy that does not parse or compile changes nothing; a new one replaces the old in
  one atomic swap in the datapath, and is saved only after the datapath took it.
- Mutations are serialised by one lock; reads are lock-free snapshots.

Runs on a slave with only the node's dependencies: no cloud code is imported here.
"""

import argparse
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading

from bayctl.errors import BayctlError, NodeError, PolicyError
from bayctl.node import conntrack_gc, nodeguard
from bayctl.node.api import AgentApi
from bayctl.node.netns import NetnsGone, interface_names, is_network_namespace
from bayctl.node.protocol import (
    DEFAULT_PIN_DIR,
    DEFAULT_SOCKET,
    DEFAULT_STATE_DIR,
    ENV_NODE_NAME,
    ENV_PIN_DIR,
    ENV_SOCKET,
    ENV_STATE_DIR,
    IFNAME_MAX_LEN,
    default_pin_dir,
    default_socket,
    default_state_dir,
)
from bayctl.node.staging import Staging
from bayctl.node.state import StateStore
from bayctl.node.unixhttp import ApiError, JsonHandler, UnixHTTPServer
from bayctl.policy import layout, parse_and_pack

LOG = logging.getLogger("bayctl.node.agent")



class Agent:
    """The node's policy and endpoints, applied to a Datapath and kept in a StateStore."""

    def __init__(self, datapath, store):
        self.datapath = datapath
        self.store = store
        self._lock = threading.Lock()
        self._policy = None          # bayctl.policy Policy, or None: fail closed
        self._policy_text = None
        self._endpoints = {}         # ip -> {"ip", "tag", "registered_as", "ifname", "netns"}
        self.staging = Staging(self)  # audit mode: a staged policy beside the active one
        self.flows = None            # bayctl.node.flows.FlowLog once start_flows() ran
        self._interfaces = {}        # (ifindex, netns cookie) -> "eth0@ns": names in flow events
        # Called (no argument, outside the lock) after the active policy changed, whichever way:
        # the bay's ZooKeeper watcher re-reports what this node now enforces (zkwatch.py).
        self.policy_listeners = []

    # -- start ---------------------------------------------------------------------------------

    def start(self):
        """Load (or reuse) the datapath, then re-apply the saved policy and endpoints."""
        self.store.ensure_dir()
        for name in self.store.remove_leftovers():
            LOG.info("removed %s: left by a write that was interrupted", name)
        self.datapath.load()
        with self._lock:
            self._restore_policy()
            self.staging.restore()
            self._restore_endpoints()

    def _restore_policy(self):
        text = self.store.load_policy_text()
        if text is None:
            self.datapath.clear_policy()
            LOG.info("no saved policy: denying all traffic until one is applied")
            return
        source = os.path.join(self.store.state_dir, "policy.yaml")
        try:
            policy, entries = parse_and_pack(text, source)
        except PolicyError as exc:
            # Fail closed, but keep the file: nothing the operator applied is lost.
            self.datapath.clear_policy()
            LOG.error("saved policy no longer valid, denying all traffic: %s", exc)
            return
        self.datapath.replace_policy(entries)
        self._policy, self._policy_text = policy, text
        LOG.info("policy restored digest=%s entries=%d", policy.digest, entries.count)

    def _restore_endpoints(self):
        saved = {ep["ip"]: ep for ep in self.store.load_endpoints()}
        # The endpoint map must say exactly what the state says: drop leftovers of
        # registrations this state does not know (they would grant a group to an address).
        for ip in set(self.datapath.endpoints()) - set(saved):
            self.datapath.delete_endpoint(ip)
            LOG.info("endpoint %s dropped: not in saved state", ip)
        vanished = _vanished_interfaces(saved.values())
        for ip, reason in sorted(vanished.items()):
            # Its container is gone (e.g. removed while the agent was down): forget it.
            del saved[ip]
            self.datapath.delete_endpoint(ip)
            LOG.info("endpoint %s dropped: %s", ip, reason)
        if vanished:
            self.store.save_endpoints(list(saved.values()))
        for ip, ep in sorted(saved.items()):
            self._endpoints[ip] = dict(ep)
            try:
                self._register(ip, int(ep["tag"]), ep.get("ifname"), ep.get("netns"))
            except (NodeError, OSError) as exc:
                # Its interface exists (gone ones were dropped above) but cannot be attached
                # now: the address keeps its group until it is removed or re-registered.
                LOG.warning("endpoint %s: cannot re-attach %s: %s", ip, _where(ep), exc)
        if saved:
            LOG.info("endpoints restored: %d", len(saved))

    # -- policy --------------------------------------------------------------------------------

    def apply_policy(self, text, source="<request>", unless=None):
        """Parse, compile and swap in `text`. `unless`: digests (or "*") meaning "the agent
        already holds it": then nothing is parsed or rewritten and the result says unchanged."""
        held = self._held(unless)
        if held:  # checked before parsing: a seeder's no-op costs the node almost nothing
            return held
        policy, entries = parse_and_pack(text, source)  # PolicyError: nothing changed
        with self._lock:
            held = self._held(unless)  # another request may have applied it meanwhile
            if held:
                return held
            self.datapath.replace_policy(entries)
            try:
                self.store.save_policy_text(text)
            except NodeError:
                # Enforced but not saved would be silently lost at the next restart: undo.
                self._reinstate(self._policy)
                raise
            self._policy, self._policy_text = policy, text
            self.staging.applied(policy.digest)  # the staged policy, applied: promoted
        LOG.info("policy applied digest=%s entries=%d source=%s", policy.digest, entries.count, source)
        self._policy_changed()
        return {"digest": policy.digest, "entries": entries.count}

    def _policy_changed(self):
        for listener in list(self.policy_listeners):
            try:
                listener()
            except Exception as exc:  # a listener never undoes or fails an apply that happened
                LOG.warning("policy listener %r: %s", listener, exc)

    def _held(self, unless):
        policy = self._policy
        if not unless or policy is None or not (policy.digest in unless or "*" in unless):
            return None
        return {"digest": policy.digest, "unchanged": True}

    def _reinstate(self, policy):
        from bayctl.policy import pack_policy

        if policy is None:
            self.datapath.clear_policy()
        else:
            self.datapath.replace_policy(pack_policy(policy))

    def show_policy(self):
        policy, text = self._policy, self._policy_text
        if policy is None:
            return {"digest": None, "groups": {}, "source": None}
        return {"digest": policy.digest, "groups": dict(policy.groups), "source": text}

    def clear_policy(self):
        with self._lock:
            self.datapath.clear_policy()
            self._policy, self._policy_text = None, None
            self.store.clear_policy()
        LOG.info("policy cleared: denying all traffic")
        self._policy_changed()
        return {"digest": None}

    # -- endpoints -----------------------------------------------------------------------------

    def add_endpoint(self, ip, group, ifname=None, netns=None, allow_uplink=False):
        ip = _check_ip(ip)
        ifname, netns = _check_interface(ifname, netns)
        if not isinstance(allow_uplink, bool):
            raise ApiError(400, f"bad allow_uplink {allow_uplink!r}: expected true or false")
        if ifname:
            _check_interface_exists(ifname, netns)
            if not allow_uplink:
                _refuse_uplink(ifname, netns)
        with self._lock:
            self._drop_vanished(cheap=True)
            tag = self._resolve_group(group)
            endpoint = {"ip": ip, "tag": tag, "registered_as": group, "ifname": ifname, "netns": netns}
            previous = self._endpoints.get(ip)
            try:
                self._register(ip, tag, ifname, netns)
            except BaseException:
                self._undo_set_endpoint(ip, previous)
                raise
            self._endpoints[ip] = endpoint
            try:
                self._save_endpoints()
            except NodeError:
                # Registered but not saved would be silently lost at the next restart: undo.
                if previous:
                    self._endpoints[ip] = previous
                else:
                    del self._endpoints[ip]
                self._undo_set_endpoint(ip, previous)
                raise
            if previous and previous.get("ifname") and _iface(previous) != _iface(endpoint):
                self._detach_if_unused(previous)
        LOG.info("endpoint added ip=%s tag=%d %s", ip, tag, _where(endpoint))
        return self._describe(endpoint)

    def remove_endpoint(self, ip):
        ip = _check_ip(ip)
        with self._lock:
            endpoint = self._endpoints.pop(ip, None)
            self.datapath.delete_endpoint(ip)
            if endpoint and endpoint.get("ifname"):
                self._detach_if_unused(endpoint)
            self._save_endpoints()
        LOG.info("endpoint removed ip=%s%s", ip, "" if endpoint else " (was not registered)")
        return {"ip": ip, "removed": endpoint is not None}

    def endpoints(self):
        with self._lock:
            self._drop_vanished()
            listed = sorted(self._endpoints.items(), key=_ip_order)
        return [self._describe(ep) for _, ep in listed]

    def _drop_vanished(self, cheap=False):
        """Forget endpoints whose interface is gone (container removed, e.g. while the agent
        was down and CNI DEL could not tell it). `cheap`: only look for namespaces that are
        gone (a stat each), not inside the ones that remain. Called with the lock held."""
        vanished = _vanished_interfaces(self._endpoints.values(), look_inside=not cheap)
        if not vanished:
            return
        for ip, reason in sorted(vanished.items()):
            self._endpoints.pop(ip)
            self.datapath.delete_endpoint(ip)
            LOG.info("endpoint %s dropped: %s", ip, reason)
        self._save_endpoints()

    def _resolve_group(self, group):
        if isinstance(group, bool):
            raise ApiError(400, f"bad group {group!r}: expected a group name or a tag 1-{layout.GROUP_MAX}")
        if isinstance(group, str) and group.strip().isdigit():
            group = int(group.strip())
        if isinstance(group, int):
            if group == layout.GROUP_EXTERNAL:
                raise ApiError(400, "group tag 0 is reserved for 'external' (peers in no group)")
            if not 1 <= group <= layout.GROUP_MAX:
                raise ApiError(400, f"bad group tag {group}: expected 1-{layout.GROUP_MAX}")
            return group
        if not isinstance(group, str) or not group:
            raise ApiError(400, f"bad group {group!r}: expected a group name or a tag 1-{layout.GROUP_MAX}")
        if self._policy is None:
            raise ApiError(400, f"unknown group '{group}': no policy applied (use a numeric tag)")
        tag = self._policy.groups.get(group)
        if tag is None or tag == layout.GROUP_EXTERNAL:
            known = ", ".join(sorted(name for name, t in self._policy.groups.items() if t))
            raise ApiError(400, f"unknown group '{group}' (the policy has: {known})")
        return tag

    def _register(self, ip, tag, ifname, netns):
        # Classify the address, with its interface's identity, before the program sees its
        # traffic: attached first, the interface's packets would briefly count as `external`.
        # The identity (ifindex + namespace cookie) lets the datapath count a packet once, at
        # the sender's interface; one write, so a restart never leaves the entry without it.
        try:
            ifindex, cookie = self.datapath.interface(ifname, netns) if ifname else (0, 0)
        except (NodeError, OSError):
            self.datapath.set_endpoint(ip, tag)  # interface gone: the address keeps its group
            raise
        self.datapath.set_endpoint(ip, tag, ifindex=ifindex, netns_cookie=cookie)
        if ifname:
            self._interfaces[(ifindex, cookie)] = f"{ifname}@{os.path.basename(netns)}" if netns else ifname
            self.datapath.attach(ifname, netns)

    def _undo_set_endpoint(self, ip, previous):
        try:
            if previous:
                ifname, netns = previous.get("ifname"), previous.get("netns")
                ifindex, cookie = self.datapath.interface(ifname, netns) if ifname else (0, 0)
                self.datapath.set_endpoint(ip, int(previous["tag"]), ifindex=ifindex, netns_cookie=cookie)
            else:
                self.datapath.delete_endpoint(ip)
        except (NodeError, OSError) as exc:
            LOG.error("endpoint %s: could not undo registration: %s", ip, exc)

    def _detach_if_unused(self, endpoint):
        # Several addresses may share one interface: detach only when the last one goes.
        if any(_iface(other) == _iface(endpoint) for other in self._endpoints.values()):
            return
        self.datapath.detach(endpoint["ifname"], endpoint.get("netns"))

    def _save_endpoints(self):
        self.store.save_endpoints(list(self._endpoints.values()))

    def _describe(self, endpoint):
        return {
            "ip": endpoint["ip"],
            "group": self._group_name(int(endpoint["tag"])),
            "tag": int(endpoint["tag"]),
            "ifname": endpoint.get("ifname"),
            "netns": endpoint.get("netns"),
        }

    def _group_name(self, tag):
        """The current policy's name for `tag`, else None (the tag alone is all we know)."""
        policy = self._policy
        if policy is not None:
            for name, number in policy.groups.items():
                if number == tag:
                    return name
        return "external" if tag == layout.GROUP_EXTERNAL else None

    # -- observation ---------------------------------------------------------------------------

    def stats(self):
        with self._lock:        # the datapath opens its pins lazily: one thread at a time
            counters, drops = self.datapath.counters(), self.datapath.drops()
        pairs = []
        for (src, dst), counts in sorted(counters.items()):
            pair = {
                "from": self._group_name(src) or str(src),
                "to": self._group_name(dst) or str(dst),
                "from_tag": src,
                "to_tag": dst,
            }
            for field in ("allowed_packets", "allowed_bytes", "dropped_packets", "dropped_bytes"):
                pair[field] = int(counts.get(field, 0))
            pairs.append(pair)
        return {"pairs": pairs, "drops": {str(k): int(v) for k, v in drops.items()}}

    # -- flow events (bayctl/node/flows.py) ----------------------------------------------------

    def start_flows(self, node, history=None, rate=None, burst=None):
        """Apply the node's flow event limit and start reading the events."""
        from bayctl.node import flows

        with self._lock:
            if rate is not None or burst is not None:
                limit = self.datapath.event_limit()
                self.datapath.set_event_limit(limit["rate"] if rate is None else rate,
                                              limit["burst"] if burst is None else burst)
            self.flows = flows.FlowLog(self.datapath, node, self._group_name, self.interface_name,
                                       history=history or flows.DEFAULT_HISTORY)
            self.flows.start()

    def set_flow_limit(self, rate, burst, enabled=True):
        with self._lock:
            self.datapath.set_event_limit(rate, burst, enabled=enabled)

    def interface_name(self, ifindex, netns_cookie):
        return self._interfaces.get((ifindex, netns_cookie)) or self._interfaces.get((ifindex, 0))

    def health(self):
        policy = self._policy
        return {"ok": True, "digest": policy.digest if policy else None, "endpoints": len(self._endpoints)}


# -- helpers ------------------------------------------------------------------------------------



def _check_ip(ip):
    if not isinstance(ip, str):
        raise ApiError(400, f"bad IP {ip!r}: expected an IPv4 address like 10.1.0.5")
    try:
        return str(ipaddress.IPv4Address(ip.strip()))
    except ValueError:
        raise ApiError(400, f"bad IP '{ip}': expected an IPv4 address like 10.1.0.5") from None


def _check_interface(ifname, netns):
    if ifname is None:
        if netns is not None:
            raise ApiError(400, "netns given without ifname: name the interface to attach to")
        return None, None
    valid = isinstance(ifname, str) and 0 < len(ifname) <= IFNAME_MAX_LEN and "/" not in ifname
    if not valid or ifname.strip() != ifname:
        raise ApiError(400, f"bad interface name {ifname!r}")
    if netns is not None:
        if not isinstance(netns, str) or not netns.startswith("/"):
            raise ApiError(400, f"bad netns {netns!r}: expected a path like /run/netns/x or /proc/PID/ns/net")
        if not os.path.exists(netns):
            raise ApiError(400, f"netns {netns} does not exist")
        if not is_network_namespace(netns):
            raise ApiError(400, f"netns {netns} is not a network namespace")
    return ifname, netns


def _check_interface_exists(ifname, netns):
    try:
        names = interface_names(netns)
    except NetnsGone:
        raise ApiError(400, f"netns {netns} does not exist") from None
    except (NodeError, OSError) as exc:
        raise ApiError(400, f"netns {netns}: {exc}") from None
    if ifname not in names:
        raise ApiError(400, f"ifname {ifname!r} does not exist in {_namespace(netns)}")


def _refuse_uplink(ifname, netns):
    if nodeguard.is_own_namespace(netns) and ifname in nodeguard.uplinks():
        raise ApiError(409, f"ifname {ifname!r} carries the default route of the agent's own namespace: "
                            "a default-deny classifier there would cut the node off "
                            '(send "allow_uplink": true if that is really meant)')


_UNKNOWN = object()     # a namespace that was not (or could not be) looked into


def _namespace(netns):
    return f"netns {netns}" if netns else "the agent's namespace"


def _vanished_interfaces(endpoints, look_inside=True):
    """ip -> why, for the endpoints whose interface no longer exists: its namespace is gone
    (or is no namespace any more), or (`look_inside`) the namespace has no such interface.
    Endpoints without an interface, and namespaces that cannot be looked into for another
    reason, are never reported: only what is known to be gone is dropped."""
    names = {}          # netns -> interface names (None: gone), one look per namespace
    vanished = {}
    for ep in endpoints:
        ifname, netns = ep.get("ifname"), ep.get("netns")
        if not ifname:
            continue
        if netns not in names:
            if netns is not None and not os.path.lexists(netns):
                names[netns] = None
            elif netns is not None and not is_network_namespace(netns):
                names[netns] = None
            elif not look_inside:
                names[netns] = _UNKNOWN
            else:
                try:
                    names[netns] = interface_names(netns)
                except NetnsGone:
                    names[netns] = None
                except (NodeError, OSError) as exc:
                    LOG.warning("cannot look into %s: %s", _namespace(netns), exc)
                    names[netns] = _UNKNOWN
        found = names[netns]
        if found is None:
            vanished[ep["ip"]] = f"its network namespace {netns} is gone"
        elif found is not _UNKNOWN and ifname not in found:
            vanished[ep["ip"]] = f"interface {ifname} no longer exists in {_namespace(netns)}"
    return vanished


def _iface(endpoint):
    return (endpoint.get("ifname"), endpoint.get("netns"))


def _where(endpoint):
    if not endpoint.get("ifname"):
        return "(no interface)"
    return f"ifname={endpoint['ifname']} netns={endpoint.get('netns') or '-'}"


def _ip_order(item):
    return ipaddress.IPv4Address(item[0])


# -- the daemon ---------------------------------------------------------------------------------


def configure_logging(verbose=False):
    """One line per event on stderr; the agent's own handler, whatever the caller configured."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s bayctl-agent[%(process)d] %(levelname)s %(message)s"))
    for name in ("bayctl.node",):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)
        logger.propagate = False


def run_agent(socket_path=None, pin_dir=None, state_dir=None, datapath=None, conntrack_timeouts=None,
              flow_options=None):
    """Run the agent until SIGTERM/SIGINT. Returns the exit status."""
    socket_path = socket_path or default_socket()
    pin_dir = pin_dir or default_pin_dir()
    state_dir = state_dir or default_state_dir()
    if datapath is None:
        from bayctl.node.datapath import Datapath

        datapath = Datapath(pin_dir=pin_dir)
    agent = Agent(datapath, StateStore(state_dir))
    server = UnixHTTPServer(socket_path, JsonHandler, AgentApi(agent))
    from bayctl.node.zkwatch import Distribution

    agent.distribution = Distribution(agent, state_dir)  # the bay's ZooKeeper, once configured
    try:
        agent.start()
        agent.distribution.start_saved()  # after start: the saved policy is enforced first
        conntrack_gc.start(datapath, conntrack_timeouts)  # this node's lifetimes; expired entries deleted
        flow_options = flow_options or {}
        agent.start_flows(flow_options.get("node") or os.environ.get(ENV_NODE_NAME) or socket.gethostname(),
                          history=flow_options.get("history"), rate=flow_options.get("rate"),
                          burst=flow_options.get("burst"))
        stop = _install_stop_handlers(server)
        LOG.info("agent ready socket=%s pin_dir=%s state_dir=%s", socket_path, pin_dir, state_dir)
        server.serve_forever(poll_interval=0.5)
        LOG.info("agent stopped (%s); pinned maps and attached programs stay in place", stop["signal"])
    finally:
        agent.distribution.stop()
        server.server_close()
        server.remove_socket()
    return 0


def _install_stop_handlers(server):
    stop = {"signal": None}

    def on_signal(signum, _frame):
        if stop["signal"] is None:
            stop["signal"] = signal.Signals(signum).name
            # shutdown() waits for serve_forever, which runs in this very thread: ask from another.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def build_parser(parser=None):
    parser = parser or argparse.ArgumentParser(prog="bayctl-agent", description=__doc__.split("\n")[0])
    parser.add_argument("--socket", default=None,
                        help=f"unix socket of the API (env {ENV_SOCKET}, default {DEFAULT_SOCKET})")
    parser.add_argument("--pin-dir", default=None,
                        help=f"bpffs directory of the pinned maps (env {ENV_PIN_DIR}, "
                             f"default {DEFAULT_PIN_DIR})")
    parser.add_argument("--state-dir", default=None,
                        help=f"where the policy and endpoints are kept (env {ENV_STATE_DIR}, "
                             f"default {DEFAULT_STATE_DIR})")
    conntrack_gc.add_arguments(parser)
    parser.add_argument("--node-name", default=None,
                        help=f"this node's name in flow events (env {ENV_NODE_NAME}, default the hostname)")
    parser.add_argument("--flow-rate", type=int, default=None,
                        help="flow events per second the datapath may emit (token bucket refill)")
    parser.add_argument("--flow-burst", type=int, default=None, help="flow event bucket size")
    parser.add_argument("--flow-history", type=int, default=None,
                        help="flow events kept in memory for GET /v1/flows")
    return parser


def _flow_options(args):
    return {"node": args.node_name, "rate": args.flow_rate, "burst": args.flow_burst,
            "history": args.flow_history}


def main(argv=None):
    parser = build_parser()
    parser.add_argument("--verbose", action="store_true", help="log debug detail")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        return run_agent(args.socket, args.pin_dir, args.state_dir,
                         conntrack_timeouts=args.conntrack_timeouts, flow_options=_flow_options(args))
    except BayctlError as exc:
        LOG.error("%s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The datapath loader: loads the tc classifier, owns its pinned maps, attaches it to interfaces.

Everything lives under one bpffs directory (pin_dir): the maps (bayctl_maps.h's BAYCTL_PIN_*)
and the program (BAYCTL_PIN_PROG). `load()` reuses the maps already pinned there, so a
restarted agent keeps the endpoints, the policy and the conntrack table, and the classifier
stays attached to interfaces while no agent runs (tc filters hold the program). Other
methods open the pins on first use, so a second process (stats, CLI) needs no `load()`.

A policy is replaced whole: a fresh inner LPM trie is filled, then written into slot 0 of
the outer ARRAY_OF_MAPS in one update; packets see the old or the new policy, never a mix.
That update returns only once no running program can still be reading the old policy (the
kernel waits an RCU grace period for map-of-maps updates), so when replace_policy returns, the
new policy decides every packet.
"""

import array
import ctypes
import errno
import ipaddress
import operator
import os
import socket
import threading
import time

from bayctl.errors import NodeError
from bayctl.gcpause import gc_paused
from bayctl.node import libbpf
from bayctl.node.netns import NetnsGone, run_in_netns
from bayctl.node.protocol import DEFAULT_PIN_DIR
from bayctl.policy import layout
from bayctl.policy.compiler import PackedPolicy

DEFAULT_OBJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf", "bayctl_tc.bpf.o")
BPFFS_ROOT = "/sys/fs/bpf"
BPF_FS_MAGIC = 0xCAFE4A11

# Our tc filter's identity on an interface: attach replaces it, detach removes only it.
TC_HANDLE = 0xBAC
TC_PRIORITY = 0xBAC

MAP_PINS = (layout.PIN_ENDPOINTS, layout.PIN_POLICY, layout.PIN_POLICY_SHAPE, layout.PIN_CONNTRACK,
            layout.PIN_CT_TIMEOUTS, layout.PIN_COUNTERS, layout.PIN_DROPS,
            layout.PIN_STAGED, layout.PIN_AUDIT,  # audit mode (lib/staged.h)
            layout.PIN_EVENTS, layout.PIN_EVENT_LIMIT, layout.PIN_EVENT_BUCKET,  # flow events
            layout.PIN_EVENT_STATS)
CT_TIMEOUT_FIELDS = tuple(name for name, _ in layout.ConntrackTimeouts._fields_)
CT_DEFAULT_TIMEOUTS = {name: getattr(layout, f"CT_DEFAULT_{name.upper()}") for name in CT_TIMEOUT_FIELDS}
INNER_POLICY_NAME = "bayctl_pol_in"

SO_NETNS_COOKIE = 71  # <asm-generic/socket.h>, Linux 5.14+

_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)
_batch_supported = None  # does this kernel batch-update LPM tries? learned on first policy


class Datapath:
    def __init__(self, pin_dir=DEFAULT_PIN_DIR, obj_path=None):
        self.pin_dir = str(pin_dir)
        self.obj_path = str(obj_path or DEFAULT_OBJECT)
        self._fds = {}
        self._fds_lock = threading.Lock()  # pins are opened lazily, possibly from several threads
        self._policy_btf = None  # (btf fd, key type id, value type id) of the inner-map template

    # ----- loading ------------------------------------------------------------------------

    def load(self):
        """Load the classifier; create the pinned maps, or reuse those already pinned."""
        _ensure_bpffs(self.pin_dir)
        self._drop_outdated_conntrack()
        with libbpf.BpfObject(self.obj_path) as obj:
            for name in MAP_PINS:
                obj.map(name).set_pin_path(self._pin(name))
            try:
                obj.load()
            except NodeError as exc:
                raise NodeError(f"{exc}; if a pin in {self.pin_dir} is from an incompatible build, "
                                "remove the pins (Datapath.unpin) and load again") from exc
            # Pin under a temporary name, then rename over the old pin: at every moment the
            # pin names a loaded program, so a concurrent attach never finds it missing.
            staging = self._pin(layout.PIN_PROG + "_new")  # bpffs refuses names with a dot
            _unlink_quietly(staging)
            obj.program(layout.PIN_PROG).pin(staging)
            os.replace(staging, self._pin(layout.PIN_PROG))
        self.close()  # fds are reopened from the pins: one code path for every process

    def close(self):
        """Close this process's file descriptors (pins and attachments stay)."""
        with self._fds_lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
            if self._policy_btf:
                os.close(self._policy_btf[0])
            self._policy_btf = None

    def unpin(self):
        """Remove every pin under pin_dir (node teardown). Attached filters keep the program
        until detached; an empty or missing directory is fine."""
        self.close()
        try:
            names = os.listdir(self.pin_dir)
        except FileNotFoundError:
            return
        for name in names:
            _unlink_quietly(self._pin(name))
        try:
            os.rmdir(self.pin_dir)
        except OSError as exc:
            raise NodeError(f"cannot remove {self.pin_dir}: {exc.strerror}") from exc

    def _pin(self, name):
        return os.path.join(self.pin_dir, name)

    def _drop_outdated_conntrack(self):
        """A conntrack table pinned by a build with another entry layout cannot be reused; it
        holds only flow state, so it is replaced (flows are re-learnt from their next packet in
        the original direction) instead of refusing to load as for the other maps."""
        fd = libbpf.obj_get(self._pin(layout.PIN_CONNTRACK))
        if fd is None:
            return
        try:
            info = libbpf.map_info(fd, what=layout.PIN_CONNTRACK)
        finally:
            os.close(fd)
        if (info.key_size, info.value_size) != (ctypes.sizeof(layout.ConntrackKey),
                                                 ctypes.sizeof(layout.ConntrackValue)):
            _unlink_quietly(self._pin(layout.PIN_CONNTRACK))

    def _fd(self, name):
        with self._fds_lock:
            fd = self._fds.get(name)
            if fd is None:
                fd = libbpf.obj_get(self._pin(name))
                if fd is None:
                    raise NodeError(f"datapath not loaded: nothing pinned at {self._pin(name)} (run load())")
                self._fds[name] = fd
            return fd

    # ----- interfaces ---------------------------------------------------------------------

    def attach(self, ifname, netns=None):
        """Attach the classifier on tc ingress and egress of `ifname` (inside `netns`, a path;
        None = this namespace). Re-attaching replaces our filter. Returns the ifindex."""
        prog_fd = self._fd(layout.PIN_PROG)
        where = _where(ifname, netns)

        def attach_here():
            ifindex = _ifindex(ifname, where)
            for point in (libbpf.TC_INGRESS, libbpf.TC_EGRESS):
                hook = libbpf.tc_hook(ifindex, point)
                libbpf.tc_hook_create(hook, where)
                libbpf.tc_attach(hook, prog_fd, TC_HANDLE, TC_PRIORITY, where)
            return ifindex

        return run_in_netns(netns, attach_here)

    def interface(self, ifname, netns=None):
        """(ifindex, netns cookie) of `ifname` in `netns`: what names an interface across
        namespaces (an ifindex alone repeats: every container's eth0 may be index 2)."""
        where = _where(ifname, netns)
        return run_in_netns(netns, lambda: (_ifindex(ifname, where), _netns_cookie(where)))

    def detach(self, ifname, netns=None):
        """Remove the classifier from `ifname`; a missing interface or namespace is not an error."""
        where = _where(ifname, netns)

        def detach_here():
            try:
                ifindex = socket.if_nametoindex(ifname)
            except OSError:
                return
            for point in (libbpf.TC_INGRESS, libbpf.TC_EGRESS):
                libbpf.tc_detach(libbpf.tc_hook(ifindex, point), TC_HANDLE, TC_PRIORITY, where)

        try:
            run_in_netns(netns, detach_here)
        except NetnsGone:
            pass

    # ----- endpoints ----------------------------------------------------------------------

    def set_endpoint(self, ip, group, ifindex=0, local=True, netns_cookie=0):
        """Classify `ip` into `group` (1..65535). `ifindex` and `netns_cookie` (from interface()):
        the interface the classifier is attached to for this local endpoint; they let a packet
        between two local endpoints be counted once (at the sender's interface) instead of at
        both. Without the cookie the ifindex alone is compared, which is right only while every
        attached interface is in one namespace."""
        key = _endpoint_key(ip)
        if isinstance(group, bool) or not isinstance(group, int) \
                or not layout.GROUP_MIN <= group <= layout.GROUP_MAX:
            raise NodeError(f"endpoint {ip}: group must be {layout.GROUP_MIN}..{layout.GROUP_MAX}, "
                            f"not {group!r}")
        if isinstance(ifindex, bool) or not isinstance(ifindex, int) or not 0 <= ifindex < 2**32:
            raise NodeError(f"endpoint {ip}: ifindex must be a non-negative integer, not {ifindex!r}")
        if isinstance(netns_cookie, bool) or not isinstance(netns_cookie, int) \
                or not 0 <= netns_cookie < 2**64:
            raise NodeError(f"endpoint {ip}: netns_cookie must be a non-negative integer, "
                            f"not {netns_cookie!r}")
        value = layout.EndpointValue(group=group, flags=layout.EP_LOCAL if local else 0, ifindex=ifindex,
                                     netns_cookie=netns_cookie)
        libbpf.map_update(self._fd(layout.PIN_ENDPOINTS), key, value, what=f"endpoint {ip}")

    def delete_endpoint(self, ip):
        """Forget `ip` (it becomes external); an unknown address is fine."""
        key = _endpoint_key(ip)
        libbpf.map_delete(self._fd(layout.PIN_ENDPOINTS), key, what=f"endpoint {ip}")

    def endpoints(self):
        """ip -> group of every endpoint."""
        fd = self._fd(layout.PIN_ENDPOINTS)
        found = {}
        for key in libbpf.map_keys(fd, layout.EndpointKey):
            value = layout.EndpointValue()
            if libbpf.map_lookup(fd, key, value):
                found[str(ipaddress.IPv4Address(key.addr))] = value.group
        return found

    # ----- policy -------------------------------------------------------------------------

    def replace_policy(self, entries):
        """Make `entries` the whole policy, atomically: (layout.PolicyKey, layout.PolicyValue)
        pairs, or a PackedPolicy (compiler.pack_policy: the agent's fast path). On any error
        the previous policy stays in force."""
        self._swap_in(layout.PIN_POLICY, entries, "policy slot 0")

    def _swap_in(self, outer_pin, entries, what):
        """Fill a fresh inner policy map with `entries` and write it into slot 0 of `outer_pin`."""
        keys, values, count = _policy_arrays(entries)
        outer = self._fd(outer_pin)
        inner = libbpf.map_create(libbpf.MAP_TYPE_LPM_TRIE, INNER_POLICY_NAME,
                                  ctypes.sizeof(layout.PolicyKey), ctypes.sizeof(layout.PolicyValue),
                                  layout.MAX_POLICY, libbpf.BPF_F_NO_PREALLOC, btf=self._inner_btf())
        try:
            _fill(inner, keys, values, count)
            libbpf.map_update(outer, ctypes.c_uint32(0), ctypes.c_uint32(inner), what=what)
        finally:
            os.close(inner)  # the outer map holds the reference now (or nothing does)

    def _inner_btf(self):
        """The BTF of the pinned inner-map template, for creating inner maps just like it.

        Kernels differ in how they compare an inner map with the outer map's template: 6.1
        refuses a BTF-less inner map where the template has BTF (EINVAL on the slot update),
        newer ones accept either. With the template's own BTF both accept it. Pins made before
        the template was pinned have none: then the map is created without BTF (fine on newer
        kernels; load() again pins the template)."""
        with self._fds_lock:
            if self._policy_btf is None:
                fd = libbpf.obj_get(self._pin(layout.PIN_POLICY_SHAPE))
                if fd is None:
                    return None
                try:
                    info = libbpf.map_info(fd, what=layout.PIN_POLICY_SHAPE)
                finally:
                    os.close(fd)
                if not info.btf_id:
                    return None
                btf_fd = libbpf.btf_fd_by_id(info.btf_id, what=f"BTF of {layout.PIN_POLICY_SHAPE}")
                self._policy_btf = (btf_fd, info.btf_key_type_id, info.btf_value_type_id)
            return self._policy_btf

    def clear_policy(self):
        """Empty slot 0: every packet is dropped with reason NO_POLICY (fail closed)."""
        libbpf.map_delete(self._fd(layout.PIN_POLICY), ctypes.c_uint32(0), what="policy slot 0")

    def policy_loaded(self):
        """Whether slot 0 holds a policy."""
        inner_id = ctypes.c_uint32()
        return libbpf.map_lookup(self._fd(layout.PIN_POLICY), ctypes.c_uint32(0), inner_id)

    # ----- audit mode (lib/staged.h) -------------------------------------------------------

    def stage_policy(self, entries, reset_counts=True):
        """Stage `entries` beside the active policy: the classifier asks it every question it
        asks the active one and counts the packets whose verdict it would change (audit_counts),
        never deciding one. The counts start from zero (unless `reset_counts` is false: the
        agent restoring the policy it staged before a restart)."""
        if reset_counts:
            # Nothing staged while the counts are emptied, so none of the old staged
            # policy's counts survive into the new one's.
            self.discard_staged()
            self._clear_audit_counts()
        self._swap_in(layout.PIN_STAGED, entries, "staged policy slot 0")

    def discard_staged(self):
        """Empty the staged slot (the counts stay readable until the next stage_policy)."""
        libbpf.map_delete(self._fd(layout.PIN_STAGED), ctypes.c_uint32(0), what="staged policy slot 0")

    def staged_loaded(self):
        inner_id = ctypes.c_uint32()
        return libbpf.map_lookup(self._fd(layout.PIN_STAGED), ctypes.c_uint32(0), inner_id)

    def audit_counts(self):
        """(src group, dst group) -> would-drop/would-allow packets, bytes and flows, summed over CPUs."""
        return self._pair_sums(layout.PIN_AUDIT, layout.AuditCounters)

    def _clear_audit_counts(self):
        fd = self._fd(layout.PIN_AUDIT)
        for key in libbpf.map_keys(fd, layout.PairKey):
            libbpf.map_delete(fd, key, what=layout.PIN_AUDIT)

    # ----- conntrack ----------------------------------------------------------------------

    def set_conntrack_timeouts(self, **seconds):
        """Set this node's conntrack lifetimes (seconds, keyword per ConntrackTimeouts field;
        fields not given keep their default). Takes effect for every packet from now on."""
        unknown = set(seconds) - set(CT_TIMEOUT_FIELDS)
        if unknown:
            raise NodeError(f"conntrack timeouts: unknown {', '.join(sorted(unknown))} "
                            f"(known: {', '.join(CT_TIMEOUT_FIELDS)})")
        for name, value in seconds.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**32:
                raise NodeError(f"conntrack timeout {name}: must be 1..{2**32 - 1} seconds, not {value!r}")
        value = layout.ConntrackTimeouts(**{**CT_DEFAULT_TIMEOUTS, **seconds})
        libbpf.map_update(self._fd(layout.PIN_CT_TIMEOUTS), ctypes.c_uint32(0), value,
                          what="conntrack timeouts")

    def conntrack_timeouts(self):
        """The lifetimes (seconds) the datapath applies now, defaults filled in."""
        value = layout.ConntrackTimeouts()
        libbpf.map_lookup(self._fd(layout.PIN_CT_TIMEOUTS), ctypes.c_uint32(0), value)
        return {name: getattr(value, name) or CT_DEFAULT_TIMEOUTS[name] for name in CT_TIMEOUT_FIELDS}

    def conntrack(self):
        """Every entry, live or expired: a list of dicts (addresses, ports, proto, groups, TCP
        state flags, expires_ns on the CLOCK_MONOTONIC clock of time.monotonic_ns())."""
        fd = self._fd(layout.PIN_CONNTRACK)
        found = []
        for key in libbpf.map_keys(fd, layout.ConntrackKey):
            value = layout.ConntrackValue()
            if libbpf.map_lookup(fd, key, value):
                found.append({
                    "saddr": str(ipaddress.IPv4Address(key.saddr)),
                    "daddr": str(ipaddress.IPv4Address(key.daddr)),
                    "sport": key.sport, "dport": key.dport, "proto": key.proto,
                    "src_group": value.src_group, "dst_group": value.dst_group,
                    "rule_id": value.rule_id, "flags": value.flags, "expires_ns": value.expires_ns,
                })
        return found

    def collect_expired_conntrack(self, now_ns=None):
        """Delete the entries that expired (the packet path already ignores them); returns how
        many. Each entry is read again just before its deletion, so only a packet arriving in
        that instant can lose its entry: it is then a new flow, re-learnt if the policy allows
        its direction."""
        fd = self._fd(layout.PIN_CONNTRACK)
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        deleted = 0
        value = layout.ConntrackValue()
        for key in libbpf.map_keys(fd, layout.ConntrackKey):
            if libbpf.map_lookup(fd, key, value) and value.expires_ns <= now_ns \
                    and libbpf.map_delete(fd, key, what=layout.PIN_CONNTRACK):
                deleted += 1
        return deleted

    # ----- counters -----------------------------------------------------------------------

    def counters(self):
        """(src group, dst group) -> allowed/dropped packets/bytes, summed over CPUs."""
        return self._pair_sums(layout.PIN_COUNTERS, layout.PairCounters)

    def _pair_sums(self, pin, value_type):
        """(src group, dst group) -> each field of a per-CPU pair map, summed over CPUs."""
        fd = self._fd(pin)
        per_cpu = value_type * libbpf.possible_cpus()
        fields = [name for name, _ in value_type._fields_]
        found = {}
        for key in libbpf.map_keys(fd, layout.PairKey):
            values = per_cpu()
            if libbpf.map_lookup(fd, key, values):
                found[(key.src_group, key.dst_group)] = {
                    name: sum(getattr(v, name) for v in values) for name in fields
                }
        return found

    # ----- flow events (lib/events.h; read by bayctl/node/flows.py) ----------------------

    def set_event_limit(self, rate=layout.EVENT_DEFAULT_RATE, burst=layout.EVENT_DEFAULT_BURST, enabled=True):
        """Rate-limit flow events on this node: `rate` per second into a bucket of `burst`."""
        for name, value, most in (("rate", rate, layout.EVENT_MAX_RATE),
                                  ("burst", burst, layout.EVENT_MAX_BURST)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
                raise NodeError(f"flow event {name} must be an integer 0..{most}, not {value!r}")
        if enabled and not burst:
            raise NodeError("flow event burst 0 would emit nothing: disable events instead")
        limit = layout.EventLimit(rate=rate, burst=burst, flags=0 if enabled else layout.EVENTS_OFF)
        libbpf.map_update(self._fd(layout.PIN_EVENT_LIMIT), ctypes.c_uint32(0), limit, what="event limit")

    def event_limit(self):
        """{"rate", "burst", "enabled"} as the datapath applies them (0/0 = the defaults)."""
        limit = layout.EventLimit()
        libbpf.map_lookup(self._fd(layout.PIN_EVENT_LIMIT), ctypes.c_uint32(0), limit)
        rate, burst = (limit.rate, limit.burst) if (limit.rate or limit.burst) else \
            (layout.EVENT_DEFAULT_RATE, layout.EVENT_DEFAULT_BURST)
        return {"rate": rate, "burst": burst, "enabled": not limit.flags & layout.EVENTS_OFF}

    def event_stats(self):
        """EventStat name (lower case) -> events, summed over CPUs."""
        return {stat.name.lower(): count for stat, count in self._slot_sums(layout.PIN_EVENT_STATS,
                                                                            layout.EventStat)}

    def events_fd(self):
        """The ring buffer's fd (owned by this Datapath: do not close it)."""
        return self._fd(layout.PIN_EVENTS)

    def drops(self):
        """DropReason name -> packets dropped for that reason, summed over CPUs."""
        return {reason.name: count for reason, count in self._slot_sums(layout.PIN_DROPS, layout.DropReason)}

    def _slot_sums(self, pin, slots):
        """(slot, count summed over CPUs) for each slot of an enum-indexed PERCPU_ARRAY of u64."""
        fd = self._fd(pin)
        per_cpu = ctypes.c_uint64 * libbpf.possible_cpus()
        for slot in slots:
            values = per_cpu()
            libbpf.map_lookup(fd, ctypes.c_uint32(slot), values)
            yield slot, sum(values)


def _endpoint_key(ip):
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError as exc:
        raise NodeError(f"endpoint {ip!r}: not an IPv4 address (the datapath is IPv4-only)") from exc
    return layout.EndpointKey(addr=int(address))


def _policy_arrays(entries):
    """Pack entries into two ctypes arrays for one batch update, validating them on the way.

    Packing goes through bytes.join and checks run over the packed bytes: per-entry Python
    work is what dominates a 100k-entry policy, so it is kept to C-level iteration.
    """
    if isinstance(entries, PackedPolicy):
        return _packed_arrays(entries)
    pairs = entries if isinstance(entries, (list, tuple)) else list(entries)
    count = len(pairs)
    if count > layout.MAX_POLICY:
        raise NodeError(f"policy has {count} entries; the datapath holds at most {layout.MAX_POLICY}")
    if count == 0:
        return None, None, 0
    with gc_paused():  # a collection pass over 100k fresh objects would cost more than the packing
        try:
            if set(map(len, pairs)) != {2}:
                _explain_bad_entry(pairs)
            keys = list(map(_FIRST, pairs))
            values = list(map(_SECOND, pairs))
            well_formed = all(
                issubclass(t, layout.PolicyKey) for t in set(map(type, keys))) and all(
                issubclass(t, layout.PolicyValue) for t in set(map(type, values)))
        except (TypeError, KeyError):
            well_formed = False
        if not well_formed:
            _explain_bad_entry(pairs)
        # ctypes structures expose their bytes through the buffer protocol: join copies them
        # straight into one buffer, with no per-entry bytes object.
        packed_keys = b"".join(keys)
        packed_values = b"".join(values)
    if not _keys_valid(packed_keys, count):
        _explain_bad_entry(pairs)
    return _as_arrays(packed_keys, packed_values, count)


def _packed_arrays(packed):
    count = packed.count
    if count > layout.MAX_POLICY:
        raise NodeError(f"policy has {count} entries; the datapath holds at most {layout.MAX_POLICY}")
    if count == 0:
        return None, None, 0
    if (len(packed.keys) != count * ctypes.sizeof(layout.PolicyKey)
            or len(packed.values) != count * ctypes.sizeof(layout.PolicyValue)
            or not _keys_valid(packed.keys, count)):
        raise NodeError(f"packed policy of {count} entries is malformed "
                        f"({len(packed.keys)} key bytes, {len(packed.values)} value bytes)")
    return _as_arrays(packed.keys, packed.values, count)


def _keys_valid(packed_keys, count):
    """Every prefixlen within the key and every pad byte zero, checked over the bytes."""
    prefixlens = array.array("I", packed_keys)[0::3]  # prefixlen: the first u32 of each 12-byte key
    key_size = ctypes.sizeof(layout.PolicyKey)
    pad_offset = layout.PolicyKey.pad.offset
    pads = packed_keys[pad_offset::key_size]
    return max(prefixlens) <= layout.POLICY_FULL_PREFIX and pads.count(0) == count


def _as_arrays(packed_keys, packed_values, count):
    key_array = (layout.PolicyKey * count).from_buffer_copy(packed_keys)
    value_array = (layout.PolicyValue * count).from_buffer_copy(packed_values)
    return key_array, value_array, count


def _explain_bad_entry(pairs):
    """Raise NodeError naming the first entry that cannot be written (the slow, precise path)."""
    for index, pair in enumerate(pairs):
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise NodeError(f"policy entry {index}: expected (PolicyKey, PolicyValue), "
                            f"got {pair!r}") from None
        if not isinstance(key, layout.PolicyKey) or not isinstance(value, layout.PolicyValue):
            raise NodeError(f"policy entry {index}: expected (PolicyKey, PolicyValue), "
                            f"got ({type(key).__name__}, {type(value).__name__})")
        if key.prefixlen > layout.POLICY_FULL_PREFIX or key.pad:
            raise NodeError(f"policy entry {index}: prefixlen {key.prefixlen} (max "
                            f"{layout.POLICY_FULL_PREFIX}) / pad {key.pad} (must be 0) invalid")
    raise NodeError("policy entries are malformed")


def _fill(fd, keys, values, count):
    """Write the entries: one batch syscall where the kernel batches LPM tries, else one by one."""
    global _batch_supported
    if count == 0:
        return
    if _batch_supported is not False:
        try:
            libbpf.map_update_batch(fd, keys, values, count, what="policy")
            _batch_supported = True
            return
        except NodeError as exc:
            if getattr(exc, "errno", None) not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP) \
                    or getattr(exc, "done", 0):
                raise
            _batch_supported = False
    update = libbpf.lib().bpf_map_update_elem
    key_size, value_size = ctypes.sizeof(layout.PolicyKey), ctypes.sizeof(layout.PolicyValue)
    key_base, value_base = ctypes.addressof(keys), ctypes.addressof(values)
    for index in range(count):
        if update(fd, key_base + index * key_size, value_base + index * value_size, libbpf.BPF_ANY) < 0:
            err = ctypes.get_errno()
            raise NodeError(f"policy entry {index}: kernel refused it: {os.strerror(err)}")


def _where(ifname, netns):
    return f"{ifname} in {netns}" if netns else ifname


def _ifindex(ifname, where):
    try:
        return socket.if_nametoindex(ifname)
    except OSError as exc:
        raise NodeError(f"cannot attach to {where}: no such interface") from exc


def _netns_cookie(where):
    """The cookie of the calling thread's network namespace (the one the datapath reads)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            return int.from_bytes(probe.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")
    except OSError as exc:
        raise NodeError(f"cannot read the namespace cookie of {where}: {exc.strerror} "
                        "(SO_NETNS_COOKIE needs Linux 5.14+)") from exc


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _ensure_bpffs(pin_dir):
    """Mount bpffs at /sys/fs/bpf if nothing is mounted there, and create pin_dir on it."""
    if pin_dir.startswith(BPFFS_ROOT + "/") and not _is_bpffs(BPFFS_ROOT):
        _mount_bpffs(BPFFS_ROOT)
    os.makedirs(pin_dir, mode=0o700, exist_ok=True)
    if not _is_bpffs(pin_dir):
        raise NodeError(f"{pin_dir} is not on a bpf filesystem (mount -t bpf bpf {BPFFS_ROOT})")


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


_libc = ctypes.CDLL(None, use_errno=True)


def _is_bpffs(path):
    buf = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return False
    return (buf.f_type & 0xFFFFFFFF) == BPF_FS_MAGIC


def _mount_bpffs(target):
    os.makedirs(target, exist_ok=True)
    if _libc.mount(b"bpf", os.fsencode(target), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise NodeError(f"cannot mount bpffs at {target}: {os.strerror(err)}")

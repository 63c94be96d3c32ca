"""A small ctypes binding to the system libbpf (Debian's libbpf.so.1): only what the datapath needs.

Every call that fails raises NodeError naming the operation, the object (path, map, interface)
and the kernel's reason (errno text), instead of returning a negative number.
Structures mirror libbpf 1.1's <bpf/bpf.h> and <bpf/libbpf.h>; each names its C twin. libbpf
checks their `sz` field, so a newer libbpf with longer structs still accepts these.
"""

import collections
import ctypes
import ctypes.util
import errno
import logging
import os

from bayctl.errors import NodeError

# enum bpf_map_type / enum bpf_tc_attach_point / flags (uapi <linux/bpf.h>, <bpf/libbpf.h>)
MAP_TYPE_LPM_TRIE = 11
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_F_NO_PREALLOC = 1
TC_INGRESS = 1
TC_EGRESS = 2
TC_F_REPLACE = 1


class MapCreateOpts(ctypes.Structure):
    """struct bpf_map_create_opts (libbpf 1.1)."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("btf_fd", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("inner_map_fd", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
        ("numa_node", ctypes.c_uint32),
        ("map_ifindex", ctypes.c_uint32),
    ]


class MapInfo(ctypes.Structure):
    """struct bpf_map_info (uapi <linux/bpf.h>; the kernel fills as much as both know)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
        ("ifindex", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
    ]


class MapBatchOpts(ctypes.Structure):
    """struct bpf_map_batch_opts."""

    _fields_ = [("sz", ctypes.c_size_t), ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class TcHook(ctypes.Structure):
    """struct bpf_tc_hook."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("ifindex", ctypes.c_int),
        ("attach_point", ctypes.c_int),
        ("parent", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


class TcOpts(ctypes.Structure):
    """struct bpf_tc_opts."""

    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("prog_fd", ctypes.c_int),
        ("flags", ctypes.c_uint32),
        ("prog_id", ctypes.c_uint32),
        ("handle", ctypes.c_uint32),
        ("priority", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


# int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size)
RING_SAMPLE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


def _load_library():
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise NodeError(f"cannot load libbpf ({name}): {exc}; install Debian's libbpf1") from exc
    p, i, u32, u64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64
    cp = ctypes.c_char_p
    signatures = {
        "bpf_object__open_file": (p, [cp, p]),
        "bpf_object__load": (i, [p]),
        "bpf_object__close": (None, [p]),
        "bpf_object__find_map_by_name": (p, [p, cp]),
        "bpf_object__find_program_by_name": (p, [p, cp]),
        "bpf_map__set_pin_path": (i, [p, cp]),
        "bpf_map__fd": (i, [p]),
        "bpf_program__fd": (i, [p]),
        "bpf_program__pin": (i, [p, cp]),
        "libbpf_get_error": (ctypes.c_long, [p]),
        "libbpf_num_possible_cpus": (i, []),
        "bpf_map_create": (i, [i, cp, u32, u32, u32, ctypes.POINTER(MapCreateOpts)]),
        "bpf_map_update_elem": (i, [i, p, p, u64]),
        "bpf_map_lookup_elem": (i, [i, p, p]),
        "bpf_map_delete_elem": (i, [i, p]),
        "bpf_map_get_next_key": (i, [i, p, p]),
        "bpf_map_update_batch": (i, [i, p, p, ctypes.POINTER(u32), ctypes.POINTER(MapBatchOpts)]),
        "bpf_obj_get_info_by_fd": (i, [i, p, ctypes.POINTER(u32)]),
        "bpf_btf_get_fd_by_id": (i, [u32]),
        "bpf_obj_pin": (i, [i, cp]),
        "bpf_obj_get": (i, [cp]),
        "bpf_tc_hook_create": (i, [ctypes.POINTER(TcHook)]),
        "bpf_tc_attach": (i, [ctypes.POINTER(TcHook), ctypes.POINTER(TcOpts)]),
        "bpf_tc_detach": (i, [ctypes.POINTER(TcHook), ctypes.POINTER(TcOpts)]),
        "ring_buffer__new": (p, [i, RING_SAMPLE_FN, p, p]),
        "ring_buffer__poll": (i, [p, i]),
        "ring_buffer__consume": (i, [p]),
        "ring_buffer__epoll_fd": (i, [p]),
        "ring_buffer__free": (None, [p]),
    }
    for func, (restype, argtypes) in signatures.items():
        fn = getattr(lib, func)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


_lib = None
_print_callback = None  # kept alive: libbpf holds a pointer to it
LOG = logging.getLogger("bayctl.libbpf")
_recent_warnings = collections.deque(maxlen=16)  # the why behind libbpf's bare -EINVAL

# libbpf repeats the kernel's extended ack for outcomes we handle as normal: a clsact that
# already exists (hook create, EEXIST), and nothing to detach (no clsact, no filter).
_EXPECTED_NOISE = (b"Exclusivity flag on", b"Parent Qdisc doesn't exist",
                   b"Cannot find specified filter chain")
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def _route_prints_to_logging(lib):
    """Send libbpf's messages to logging instead of stderr (x86-64: va_list is a pointer)."""
    global _print_callback
    libc = ctypes.CDLL(None)
    libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

    def forward(level, fmt, args):
        buf = ctypes.create_string_buffer(1024)
        libc.vsnprintf(buf, len(buf), fmt, args)
        text = buf.value.rstrip()
        if level <= 1 and not any(noise in text for noise in _EXPECTED_NOISE):
            message = text.decode(errors="replace")
            if level == 0:
                _recent_warnings.append(message.removeprefix("libbpf: "))
            LOG.log(logging.WARNING if level == 0 else logging.INFO, "%s", message)
        return 0

    _print_callback = _PRINT_FN(forward)
    lib.libbpf_set_print.restype = ctypes.c_void_p
    lib.libbpf_set_print.argtypes = [_PRINT_FN]
    lib.libbpf_set_print(_print_callback)


def lib():
    """The loaded libbpf (loaded on first use so importing this module never fails)."""
    global _lib
    if _lib is None:
        _lib = _load_library()
        if ctypes.sizeof(ctypes.c_void_p) == 8 and os.uname().machine == "x86_64":
            _route_prints_to_logging(_lib)
    return _lib


def _b(text):
    return os.fsencode(text)


def _fail(what, err):
    err = abs(err)
    raise NodeError(f"{what}: {os.strerror(err)} ({errno.errorcode.get(err, err)})")


def check(ret, what):
    """libbpf 1.x returns -errno on failure; turn that into NodeError."""
    if ret < 0:
        _fail(what, ret)
    return ret


def _check_errno(ret, what):
    """Low-level bpf_* wrappers return -1 and set errno (or -errno, depending on version)."""
    if ret < 0:
        _fail(what, ctypes.get_errno() or -ret)
    return ret


def _check_ptr(ptr, what):
    if not ptr:
        _fail(what, ctypes.get_errno() or errno.EINVAL)
    err = lib().libbpf_get_error(ptr)
    if err:
        _fail(what, err)
    return ptr


class BpfObject:
    """bpf_object__open_file .. load .. close, with map/program lookups by name."""

    def __init__(self, path):
        self.path = str(path)
        if not os.path.exists(self.path):
            raise NodeError(f"{self.path}: datapath object not found (build it with `make -C policy`)")
        self._obj = _check_ptr(lib().bpf_object__open_file(_b(self.path), None), f"open {self.path}")

    def map(self, name):
        ptr = lib().bpf_object__find_map_by_name(self._obj, name.encode())
        if not ptr:
            raise NodeError(f"{self.path}: no map named {name}")
        return BpfMap(ptr, name)

    def program(self, name):
        ptr = lib().bpf_object__find_program_by_name(self._obj, name.encode())
        if not ptr:
            raise NodeError(f"{self.path}: no program named {name}")
        return BpfProgram(ptr, name)

    def load(self):
        _recent_warnings.clear()
        ret = lib().bpf_object__load(self._obj)
        if ret < 0:
            # libbpf's first complaint names the map or program and why ("parameter mismatch")
            why = f" ({_recent_warnings[0]})" if _recent_warnings else ""
            _fail(f"load {self.path} into the kernel{why}", ret)

    def close(self):
        if self._obj:
            lib().bpf_object__close(self._obj)
            self._obj = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BpfMap:
    def __init__(self, ptr, name):
        self._ptr, self.name = ptr, name

    def set_pin_path(self, path):
        """Pin at `path` on load, or reuse the map already pinned there (libbpf checks compatibility)."""
        check(lib().bpf_map__set_pin_path(self._ptr, _b(path)), f"set pin path of map {self.name}")

    @property
    def fd(self):
        return check(lib().bpf_map__fd(self._ptr), f"fd of map {self.name}")


class BpfProgram:
    def __init__(self, ptr, name):
        self._ptr, self.name = ptr, name

    @property
    def fd(self):
        return check(lib().bpf_program__fd(self._ptr), f"fd of program {self.name}")

    def pin(self, path):
        check(lib().bpf_program__pin(self._ptr, _b(path)), f"pin program {self.name} at {path}")


def possible_cpus():
    return check(lib().libbpf_num_possible_cpus(), "count possible CPUs")


def map_create(map_type, name, key_size, value_size, max_entries, flags=0, btf=None):
    """`btf`: (btf_fd, key_type_id, value_type_id) describing key and value, or None."""
    opts = MapCreateOpts(sz=ctypes.sizeof(MapCreateOpts), map_flags=flags)
    if btf is not None:
        opts.btf_fd, opts.btf_key_type_id, opts.btf_value_type_id = btf
    fd = lib().bpf_map_create(map_type, name.encode(), key_size, value_size, max_entries, ctypes.byref(opts))
    return _check_errno(fd, f"create map {name}")


def _ref(obj):
    return ctypes.cast(ctypes.byref(obj), ctypes.c_void_p) if obj is not None else None


def map_update(fd, key, value, flags=BPF_ANY, what="map"):
    _check_errno(lib().bpf_map_update_elem(fd, _ref(key), _ref(value), flags), f"update {what}")


def map_lookup(fd, key, value):
    """Fill `value` and return True, or return False if `key` is absent."""
    ret = lib().bpf_map_lookup_elem(fd, _ref(key), _ref(value))
    if ret < 0:
        err = ctypes.get_errno() or -ret
        if err == errno.ENOENT:
            return False
        _fail("map lookup", err)
    return True


def map_delete(fd, key, what="map"):
    """Delete `key`; return False if it was absent."""
    ret = lib().bpf_map_delete_elem(fd, _ref(key))
    if ret < 0:
        err = ctypes.get_errno() or -ret
        if err == errno.ENOENT:
            return False
        _fail(f"delete from {what}", err)
    return True


def map_keys(fd, key_type):
    """Every key of a map (snapshot by get_next_key; entries may change meanwhile)."""
    keys = []
    key, next_key = None, key_type()
    while True:
        ret = lib().bpf_map_get_next_key(fd, _ref(key), _ref(next_key))
        if ret < 0:
            err = ctypes.get_errno() or -ret
            if err == errno.ENOENT:
                return keys
            _fail("iterate map keys", err)
        keys.append(next_key)
        key, next_key = next_key, key_type()


def map_update_batch(fd, keys, values, count, flags=BPF_ANY, what="map"):
    """BPF_MAP_UPDATE_BATCH of `count` keys/values (ctypes arrays). Returns how many were written
    before an error; raises NodeError with the errno on failure (`.errno` attribute set)."""
    done = ctypes.c_uint32(count)
    opts = MapBatchOpts(sz=ctypes.sizeof(MapBatchOpts), elem_flags=flags)
    ret = lib().bpf_map_update_batch(
        fd, ctypes.cast(keys, ctypes.c_void_p), ctypes.cast(values, ctypes.c_void_p),
        ctypes.byref(done), ctypes.byref(opts),
    )
    if ret < 0:
        err = ctypes.get_errno() or -ret
        exc = NodeError(f"batch update {what}: {os.strerror(err)} ({errno.errorcode.get(err, err)})")
        exc.errno = err
        exc.done = done.value
        raise exc
    return done.value


def map_info(fd, what="map"):
    """The kernel's struct bpf_map_info of a map fd."""
    info = MapInfo()
    size = ctypes.c_uint32(ctypes.sizeof(info))
    _check_errno(lib().bpf_obj_get_info_by_fd(fd, _ref(info), ctypes.byref(size)), f"info of {what}")
    return info


def btf_fd_by_id(btf_id, what="BTF"):
    """A new fd for the kernel BTF object `btf_id` (the caller closes it)."""
    return _check_errno(lib().bpf_btf_get_fd_by_id(btf_id), f"open {what} (BTF id {btf_id})")


def obj_pin(fd, path):
    _check_errno(lib().bpf_obj_pin(fd, _b(path)), f"pin {path}")


def obj_get(path):
    """fd of the object pinned at `path`, or None if nothing is pinned there."""
    fd = lib().bpf_obj_get(_b(path))
    if fd < 0:
        err = ctypes.get_errno() or -fd
        if err == errno.ENOENT:
            return None
        _fail(f"open pinned object {path}", err)
    return fd


def tc_hook(ifindex, attach_point):
    return TcHook(sz=ctypes.sizeof(TcHook), ifindex=ifindex, attach_point=attach_point)


def tc_hook_create(hook, what):
    """Create the clsact qdisc; one that already exists is fine."""
    ret = lib().bpf_tc_hook_create(ctypes.byref(hook))
    if ret < 0 and -ret != errno.EEXIST:
        _fail(f"create clsact on {what}", ret)


def tc_attach(hook, prog_fd, handle, priority, what):
    opts = TcOpts(sz=ctypes.sizeof(TcOpts), prog_fd=prog_fd, flags=TC_F_REPLACE, handle=handle,
                  priority=priority)
    check(lib().bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts)), f"attach to {what}")


def tc_detach(hook, handle, priority, what):
    """Remove our filter; return False if it (or the hook) was not there."""
    opts = TcOpts(sz=ctypes.sizeof(TcOpts), handle=handle, priority=priority)
    ret = lib().bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts))
    if ret < 0:
        if -ret in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
            return False
        _fail(f"detach from {what}", ret)
    return True


class RingBuffer:
    """A BPF_MAP_TYPE_RINGBUF consumer (libbpf's ring_buffer): `on_record(bytes)` is called for
    each record, from the thread that calls poll(). One consumer per ring buffer: the read
    position lives in the map itself."""

    def __init__(self, map_fd, on_record, what="ring buffer"):
        def sample(_ctx, data, size):
            try:
                on_record(ctypes.string_at(data, size))
            except Exception:  # an exception cannot cross libbpf's C frames: log, go on
                LOG.exception("%s: record handler failed", what)
            return 0

        self._callback = RING_SAMPLE_FN(sample)  # kept alive as long as libbpf may call it
        self.what = what
        self._ptr = _check_ptr(lib().ring_buffer__new(map_fd, self._callback, None, None),
                               f"cannot open {what}")

    def poll(self, timeout_ms):
        """Wait up to timeout_ms for records and hand them over; returns how many."""
        ret = lib().ring_buffer__poll(self._ptr, timeout_ms)
        if ret == -errno.EINTR:
            return 0
        return check(ret, f"poll {self.what}")

    def close(self):
        if self._ptr:
            lib().ring_buffer__free(self._ptr)
            self._ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

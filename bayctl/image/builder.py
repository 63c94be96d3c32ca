"""`build()`: one node image from a request, reused when its inputs did not change.

Steps: validate the request and resolve the elements (errors before anything runs) ->
settle the DIB environment (mirrors from this machine's apt sources, a block-device
layout that builds here) -> digest the inputs -> reuse the image if the record beside it
has that digest -> else build the bayctl wheelhouse, run DIB to a temporary name, and
rename the image into place only when DIB succeeded.
"""

import fcntl
import glob
import importlib.metadata
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Tuple

import bayctl
from bayctl.errors import ImageError
from bayctl.image import blockdev, dib, elements, mirrors, record, source
from bayctl.image.progress import Step, describe

DEFAULT_DISTRO = "debian-minimal"
DEFAULT_RELEASE = "bookworm"
# A bootable cloud image with cloud-init (runs the Heat templates' user data, which
# names the node's role) and sshd (policy seeding), bayctl's node side and Mesos.
# magnum-mesos-node: what Magnum 10.0.0's own mesos templates expect of the image (Heat's
# software-config agent for the master's deployments, the NIC named eth0).
DEFAULT_ELEMENTS = ("vm", "cloud-init", "openssh-server", "bayctl-node", "mesos", "magnum-mesos-node")
FORMATS = ("qcow2", "raw")
DEFAULT_CACHE = os.path.expanduser("~/.cache/image-create")


@dataclass(frozen=True)
class ImageRequest:
    """What to build. `env` holds DIB_* settings; they win over the process environment."""

    output: str
    elements: Tuple[str, ...] = DEFAULT_ELEMENTS
    distro: str = DEFAULT_DISTRO
    release: str = DEFAULT_RELEASE
    image_format: str = "qcow2"
    compress: bool = True
    cache_dir: Optional[str] = None
    env: Mapping[str, str] = field(default_factory=dict)
    elements_dirs: Tuple[str, ...] = ()
    bayctl_source: Optional[str] = None
    log_path: Optional[str] = None
    force: bool = False


@dataclass
class ImageBuild:
    """A built (or reused) image."""

    path: str
    image_format: str
    distro: str
    release: str
    inputs_digest: str
    reused: bool
    seconds: float
    log_path: Optional[str]
    sha256: str
    size: int


def build(request, on_step: Optional[Callable] = None, environ: Optional[Mapping[str, str]] = None):
    """Build the image `request` describes, or reuse it; returns an ImageBuild, raises ImageError.

    `on_step(step)` is called whenever DIB moves to another phase or element
    (bayctl.image.progress.Step); the whole DIB output goes to the log file.
    """
    started = time.monotonic()
    environ = dict(os.environ if environ is None else environ)
    output = _output_path(request)
    plan = _plan(request, environ)
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with _locked(output):
        old = record.read_record(output)
        if not request.force and record.image_matches(output, old, plan.digest):
            return _result(request, output, old, reused=True, seconds=time.monotonic() - started)
        mirrors.check_reachable(plan.env, request.release)
        log_path = request.log_path or output + ".log"
        with open(log_path, "w", encoding="utf-8") as log:
            env = plan.env
            if plan.needs_bayctl and not env.get("DIB_BAYCTL_SOURCE"):
                if on_step:
                    on_step(Step("bayctl wheelhouse", None, None))
                env = {**env, "DIB_BAYCTL_SOURCE": source.wheelhouse(plan.cache_dir, log)}
        base = os.path.join(os.path.dirname(output), f".{os.path.basename(output)}.building-{os.getpid()}")
        argv = dib.dib_command(base, request.image_format, request.compress, plan.element_names)
        try:
            # DIB appends to the log the wheelhouse step started.
            run = _run_dib(argv, env, log_path, plan.owners, on_step)
            built = f"{base}.{request.image_format}"
            if run.returncode != 0 or not os.path.isfile(built):
                raise _failure(run, log_path)
            new = {
                "inputs_digest": plan.digest, "sha256": record.file_sha256(built),
                "distro": request.distro, "release": request.release, "format": request.image_format,
                "elements": list(request.elements), "bayctl_version": bayctl.__version__,
                "diskimage_builder": _dib_version(), "setting_names": sorted(plan.setting_names),
                "log": os.path.abspath(log_path),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            record.drop_record(output)
            os.rename(built, output)
            _keep_manifests(base, output)
            new = record.write_record(output, new)
        finally:
            _remove_partial(base)
    return _result(request, output, new, reused=False, seconds=time.monotonic() - started)


def _run_dib(argv, env, log_path, owners, on_step):
    # One seam, so a test can assert that a reused image never runs DIB.
    return dib.run(argv, env, log_path, owners, on_step, append=True)


@dataclass(frozen=True)
class _Plan:
    env: dict
    element_names: Tuple[str, ...]
    owners: dict
    digest: str
    setting_names: Tuple[str, ...]
    needs_bayctl: bool
    cache_dir: str


def _plan(request, environ):
    """Validate, resolve and digest, with no side effect."""
    if request.image_format not in FORMATS:
        raise ImageError(f"image format {request.image_format!r}: expected one of {', '.join(FORMATS)}")
    if not request.release:
        raise ImageError("release: a distribution release is required (e.g. bookworm)")
    for key in request.env:
        if not key.startswith("DIB_"):
            raise ImageError(f"setting {key}: only DIB_* settings are passed to the build")
    cache_dir = os.path.abspath(request.cache_dir or environ.get("DIB_IMAGE_CACHE") or DEFAULT_CACHE)
    dirs = elements.elements_path(request.elements_dirs)
    names = (request.distro, *request.elements)
    resolved = elements.resolve(names, dirs)

    env = dict(environ)
    env.update(request.env)
    env.update({k: v for k, v in mirrors.mirror_env(request.release, env).items()})
    env.update(blockdev.block_device_env(env))
    env["DIB_RELEASE"] = request.release
    env["DIB_IMAGE_CACHE"] = cache_dir
    # Keep and reuse the debootstrap result in the cache (DIB's default is not to): a warm
    # rebuild then starts from it; install.d/00-up-to-date still upgrades every package.
    env.setdefault("DIB_DEBOOTSTRAP_CACHE", "1")
    env.setdefault("DIB_DEBIAN_USE_DEBOOTSTRAP_CACHE", "1")
    env["ELEMENTS_PATH"] = ":".join(dirs)
    if request.bayctl_source:
        if not os.path.exists(request.bayctl_source):
            raise ImageError(f"bayctl source {request.bayctl_source} does not exist")
        env["DIB_BAYCTL_SOURCE"] = os.path.abspath(request.bayctl_source)

    needs_bayctl = any(name == "bayctl-node" for name, _ in resolved)
    if any(name == "mesos" for name, _ in resolved) and not (env.get("DIB_MESOS_APT_REPO")
                                                             or env.get("DIB_MESOS_DEB_DIR")):
        # The element itself finds out only after debootstrap (extra-data.d): say it now.
        raise ImageError("the mesos element needs Mesos packages, which no distribution has: set "
                         "DIB_MESOS_APT_REPO and/or DIB_MESOS_DEB_DIR (bayctl image build "
                         "--mesos-apt-repo/--mesos-deb-dir; devstack: BAYCTL_MESOS_APT_REPO/"
                         "BAYCTL_MESOS_DEB_DIR)")
    if env.get("DIB_BAYCTL_SOURCE"):
        bayctl_source = "content:" + elements.tree_digest(env["DIB_BAYCTL_SOURCE"])
    elif needs_bayctl:
        if not source.is_checkout():
            raise ImageError("bayctl-node needs bayctl's node packages: this bayctl is not a checkout, "
                             "pass --bayctl-source (a folder of wheels, or a wheel/sdist)")
        bayctl_source = "checkout:" + source.checkout_digest()
    else:
        bayctl_source = None

    settings = {k: v for k, v in env.items() if k.startswith("DIB_") and k not in record.NOT_INPUTS}
    inputs = {
        "bayctl": bayctl.__version__,
        "diskimage_builder": _dib_version(),
        "distro": request.distro,
        "release": request.release,
        "format": request.image_format,
        "compress": request.compress,
        "elements": list(names),
        "element_trees": {name: ("diskimage-builder" if elements.is_dib_builtin(path)
                                 else elements.tree_digest(path)) for name, path in resolved},
        "settings": {k: record.setting_value(v, elements.tree_digest) for k, v in settings.items()},
        "bayctl_source": bayctl_source,
    }
    return _Plan(env=env, element_names=names, owners=elements.script_owners(resolved),
                 digest=record.inputs_digest(inputs), setting_names=tuple(settings),
                 needs_bayctl=needs_bayctl, cache_dir=cache_dir)


def _output_path(request):
    output = os.path.abspath(request.output)
    if not output.endswith("." + request.image_format):
        output += "." + request.image_format
    return output


def _failure(run, log_path):
    step, tail = run.progress.failure()
    if step.element:
        where = f"in element {step.element} ({step.phase}/{step.script})"
    else:
        where = f"in {describe(step)}"
    lines = "\n".join("    " + line for line in tail)
    return ImageError(f"image build failed {where} (exit {run.returncode}); full log: {log_path}\n"
                      f"  last lines:\n{lines}")


def _keep_manifests(base, output):
    """DIB writes BASE.d/dib-manifests (packages, arguments): keep them as <image>.d."""
    if os.path.isdir(base + ".d"):
        target = os.path.splitext(output)[0] + ".d"
        shutil.rmtree(target, ignore_errors=True)
        os.rename(base + ".d", target)


def _remove_partial(base):
    """Nothing half-written survives a failed or interrupted build."""
    for leftover in glob.glob(glob.escape(base) + ".*") + glob.glob(glob.escape(base) + "*-new"):
        if os.path.isdir(leftover):
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


class _locked:
    """One build per output at a time (a second waits, then finds the image to reuse)."""

    def __init__(self, output):
        self.path = os.path.join(os.path.dirname(output), f".{os.path.basename(output)}.lock")

    def __enter__(self):
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _result(request, output, rec, reused, seconds):
    return ImageBuild(path=output, image_format=rec.get("format", request.image_format),
                      distro=rec.get("distro", request.distro), release=rec.get("release", request.release),
                      inputs_digest=rec["inputs_digest"], reused=reused, seconds=round(seconds, 1),
                      log_path=rec.get("log"), sha256=rec.get("sha256", ""), size=rec.get("size", 0))


def _dib_version():
    try:
        return importlib.metadata.version("diskimage-builder")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"

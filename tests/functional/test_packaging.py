"""bayctl as users install it: `python -m build` makes an sdist and a wheel, the wheel goes into
a fresh virtualenv, and from a directory outside the checkout that virtualenv's `bayctl` does
the main job on a local bay (create with a shipped example by name, verify, delete).

One build and one virtualenv per session. The virtualenv lives in pytest's tmp dir: this test
boots no qemu guest, so /tmp is the host's own. Its dependencies come from a wheelhouse kept
in BAYCTL_WHEELHOUSE (default /var/cache/bayctl-ci/wheelhouse): filled from the index once,
installed from with --no-index after that.
"""

import email.parser
import glob
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile

import pytest
from harness.prereq import require, require_root, require_tools

import bayctl

pytestmark = [pytest.mark.packaging]

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARE = os.path.join(CHECKOUT, "bayctl", "share")
WHEELHOUSE = os.environ.get("BAYCTL_WHEELHOUSE", "/var/cache/bayctl-ci/wheelhouse")
# What a copy of the checkout leaves out: VCS data, build products, caches.
NOT_SOURCE = shutil.ignore_patterns(".git", ".cache", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                    "*.o", ".pytest_cache", ".hypothesis", ".tox")
# The main job's libraries: base dependencies, not extras (issue 12, item 2).
BASE_LIBRARIES = {"pyyaml", "cliff", "asyncssh", "pyroute2", "openstacksdk", "python-heatclient",
                  "python-magnumclient"}
EM_BPF = 247


def run(argv, **kwargs):
    kwargs.setdefault("timeout", 900)
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{argv}: rc {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def shipped_files(root):
    """{path relative to the checkout: mode} of the files under bayctl/share."""
    files = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            if name.endswith((".pyc",)):
                continue
            path = os.path.join(folder, name)
            files[os.path.relpath(path, CHECKOUT)] = os.stat(path).st_mode
    return files


@pytest.fixture(scope="session")
def dists(tmp_path_factory):
    """(sdist, wheel) built by `python -m build` from a copy of this checkout (sdist first, then
    the wheel from the sdist, as `build` does by default)."""
    for module in ("build", "wheel", "setuptools"):
        require(shutil.which(sys.executable) and _importable(module),
                f"needs {module} (pip install -e '.[test]')")
    require_tools("make", "clang")
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(CHECKOUT, source, ignore=NOT_SOURCE, symlinks=True)
    out = work / "dist"
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)])
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, os.listdir(out)
    return sdists[0], wheels[0]


def _importable(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_sdist_holds_everything_a_wheel_is_built_from(dists):
    sdist, _ = dists
    top = f"bayctl-{bayctl.__version__}/"
    with tarfile.open(sdist) as archive:
        members = {m.name[len(top):]: m for m in archive.getmembers() if m.name.startswith(top)}
    tracked = run(["git", "-C", CHECKOUT, "ls-files", "policy"]).stdout.split()
    assert tracked and "policy/Makefile" in tracked
    for path in tracked:  # the C sources, headers and Makefile the datapath is compiled from
        assert path in members, f"{path} not in the sdist"
    for path in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        assert path in members
    for path, mode in shipped_files(SHARE).items():
        assert path in members, f"{path} not in the sdist"
        assert members[path].mode & 0o111 == mode & 0o111, f"{path}: executable bits lost"
    assert not [name for name in members if name.endswith(".o")], "a build product in the sdist"


def test_wheel_holds_the_datapath_object_and_the_shipped_data(dists):
    _, wheel = dists
    assert wheel.name == f"bayctl-{bayctl.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        header = archive.read("bayctl/node/bpf/bayctl_tc.bpf.o")[:20]
        metadata = archive.read(f"bayctl-{bayctl.__version__}.dist-info/METADATA").decode()
    # The datapath: an ELF object for eBPF, little-endian (what the py3-none-any tag promises).
    assert header[:4] == b"\x7fELF" and header[5] == 1 and int.from_bytes(header[18:20], "little") == EM_BPF
    shipped = shipped_files(SHARE)
    for kind in ("heat_templates", "elements", "policies"):
        assert any(path.startswith(f"bayctl/share/{kind}/") for path in shipped), kind
    executables = 0
    for path, mode in shipped.items():
        assert path in infos, f"{path} not in the wheel"
        wheel_mode = infos[path].external_attr >> 16
        assert wheel_mode & 0o111 == mode & 0o111, f"{path}: executable bits lost in the wheel"
        executables += bool(mode & stat.S_IXUSR)
    assert executables > 0  # the elements' phase scripts
    requires = email.parser.Parser().parsestr(metadata).get_all("Requires-Dist")
    base = {re.split(r"[ ;<>=!~\[]", r)[0].lower() for r in requires if "extra ==" not in r}
    assert BASE_LIBRARIES <= base, f"not base dependencies: {BASE_LIBRARIES - base}"


@pytest.fixture(scope="session")
def venv(dists, tmp_path_factory):
    """A fresh virtualenv (no system site-packages) with the wheel installed; its bin folder."""
    _, wheel = dists
    path = tmp_path_factory.mktemp("venv") / "v"
    run([sys.executable, "-m", "venv", str(path)])
    pip = [str(path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    offline = pip + ["install", "--no-index", "--find-links", WHEELHOUSE, str(wheel)]
    if subprocess.run(offline, capture_output=True).returncode != 0:
        # First run on this machine (or new dependencies): fill the wheelhouse from the index.
        os.makedirs(WHEELHOUSE, exist_ok=True)
        run(pip + ["wheel", "--wheel-dir", WHEELHOUSE, str(wheel)])
        for stale in glob.glob(os.path.join(WHEELHOUSE, "bayctl-*.whl")):
            os.remove(stale)  # the house holds the dependencies; bayctl's wheel is this build's
        run(offline)
    return path / "bin"


@pytest.fixture
def outside(tmp_path):
    """A working directory outside the checkout and an environment that cannot import it."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OS_", "VIRTUAL_ENV"))}
    env["BAYCTL_STATE_DIR"] = str(tmp_path / "bays")
    return cwd, env


def in_venv(bin_dir, cwd, env, *argv, **kwargs):
    env = dict(env, PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}")
    return subprocess.run([str(bin_dir / argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=kwargs.pop("timeout", 600), **kwargs)


def test_installed_bayctl_imports_nothing_from_the_checkout(venv, outside):
    cwd, env = outside
    code = ("import bayctl, bayctl.share as s, sys; "
            "print(bayctl.__file__); print(s.policies_dir()); print(sys.path)")
    result = in_venv(venv, cwd, env, "python", "-c", code)
    assert result.returncode == 0, result.stderr
    module, policies, path = result.stdout.splitlines()
    site = str(venv.parent / "lib")
    assert module.startswith(site) and policies.startswith(site)
    assert CHECKOUT not in path
    version = in_venv(venv, cwd, env, "bayctl", "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"bayctl {bayctl.__version__}"


def test_installed_bayctl_lists_the_shipped_examples(venv, outside):
    cwd, env = outside
    result = in_venv(venv, cwd, env, "bayctl", "policy", "examples", "-f", "value", "-c", "name")
    assert result.returncode == 0, result.stderr
    expected = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(SHARE, "policies"))
                      if n.endswith(".yaml"))
    assert result.stdout.split() == expected


@pytest.mark.root
@pytest.mark.sshd
def test_installed_bayctl_creates_verifies_and_deletes_a_local_bay(venv, outside):
    from bayctl.providers import local_nodes

    require_root()
    require_tools("ip", "nsenter", "setsid", "ssh-keygen", "sshd", "curl")
    require(os.path.exists(local_nodes.SSHD), f"needs {local_nodes.SSHD} (openssh-server)")
    cwd, env = outside
    name = "bpkg1"
    created = in_venv(venv, cwd, env, "bayctl", "create", "mesosbay", name, "--policy", "web-db",
                      "--slaves", "1")
    try:
        assert created.returncode == 0, created.stderr
        shown = in_venv(venv, cwd, env, "bayctl", "show", name, "-f", "value", "-c", "policy")
        assert shown.stdout.strip().startswith(str(venv.parent / "lib")), shown.stdout  # the shipped example
        agents = agent_processes(env["BAYCTL_STATE_DIR"])
        assert agents, "no agent process of the bay found"
        for pid in agents:  # the agents run the virtualenv's Python, away from the checkout
            argv0 = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[0].decode()
            assert argv0 == str(venv / "python")
            assert not os.readlink(f"/proc/{pid}/cwd").startswith(CHECKOUT)
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            assert not [e for e in environ if e.startswith(b"PYTHONPATH=")]
        verified = in_venv(venv, cwd, env, "bayctl", "verify", name)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "all as the policy says" in verified.stderr
    finally:
        deleted = in_venv(venv, cwd, env, "bayctl", "delete", "bay", name)
    assert deleted.returncode == 0, deleted.stderr
    assert not agent_processes(env["BAYCTL_STATE_DIR"])


def agent_processes(state_dir):
    """pids of agents whose command line names a socket or state under this test's bays."""
    from bayctl.providers.local_nodes import cmdline

    pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    return [pid for pid in pids
            if "bayctl.node.agent" in (argv := cmdline(pid)) and any(state_dir in a for a in argv)]


def test_building_from_the_sdist_without_clang_says_what_to_install_in_one_line(dists, tmp_path):
    sdist, _ = dists
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path)
    source = tmp_path / f"bayctl-{bayctl.__version__}"
    # As on a machine without clang: the build finds none where CLANG (policy/Makefile's) says.
    env = dict(os.environ, CLANG=str(tmp_path / "no-clang-here"))
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir",
                             str(tmp_path / "out"), str(source)], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if "cannot compile the eBPF datapath" in line]
    assert len(errors) == 1, output
    for package in ("clang", "llvm", "libbpf-dev", "make"):
        assert package in errors[0]
    assert "Traceback" not in output
    assert not list((tmp_path / "out").glob("*.whl"))

"""What `bayctl-cni` loads before it does anything: the runtime starts one process per ADD and
DEL (50 at once when 50 containers start), so every module imported on that path is paid for
50 times over. The netlink library, YAML and the policy compiler, and anything cloud-side,
are loaded only by the code that uses them: never for the entry point, VERSION, a config
error, or an ADD/DEL that the node agent carries out. A fact about sys.modules, not a timing.
"""

import json
import subprocess
import sys

import bayctl

# Modules the plugin's own start must not pull in (each costs tens to hundreds of ms).
HEAVY = ("pyroute2", "yaml", "bayctl.policy.parser", "bayctl.policy.compiler", "bayctl.node.links",
         "bayctl.node.ipam", "asyncio", "openstack", "keystoneauth1", "kazoo", "asyncssh", "bayctl.cloud")

CONFIG = {"cniVersion": "1.0.0", "name": "web", "type": "bayctl-cni",
          "agentSocket": "/nonexistent/agent.sock", "ipam": {"type": "bayctl", "subnet": "10.221.0.0/24"}}


def loaded_after(body, stdin="", env=None):
    """The HEAVY modules present after running `body` in a fresh interpreter (this tree's bayctl)."""
    tree = bayctl.__path__[0].rsplit("/", 1)[0]
    code = (f"import sys; sys.path.insert(0, {tree!r})\n{body}\n"
            f"import json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-I", "-c", code], input=stdin, capture_output=True, text=True,
                          env=env or {"PATH": "/usr/bin:/bin"}, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done, json.loads(done.stderr.strip().splitlines()[-1])


def test_importing_the_entry_point_loads_no_heavy_module():
    # The console script does exactly this: `from bayctl.node.cni import main`.
    _, heavy = loaded_after("from bayctl.node.cni import main")
    assert heavy == []


def test_version_and_a_config_error_load_no_heavy_module():
    done, heavy = loaded_after("from bayctl.node.cni import main\nmain()",
                               env={"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION"})
    assert json.loads(done.stdout)["supportedVersions"] and heavy == []
    bad = dict(CONFIG, linkMode="sideways")
    done, heavy = loaded_after("from bayctl.node.cni import main\nmain()", stdin=json.dumps(bad),
                               env={"PATH": "/usr/bin:/bin", "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1",
                                    "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/x"})
    answer = json.loads(done.stdout)
    assert answer["code"] == 7 and "linkMode 'sideways'" in answer["msg"]
    assert heavy == []

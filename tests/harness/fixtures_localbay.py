"""Local bays in tests: each module's own state dir, and what a bay leaves on this machine."""

import os
import subprocess

import pytest

from bayctl.providers import local_net, local_nodes


@pytest.fixture(scope="module")
def state_root(tmp_path_factory):
    """bayctl's bay state for this module only (never the machine's /var/lib/bayctl)."""
    root = str(tmp_path_factory.mktemp("bb-bays"))
    before = os.environ.get("BAYCTL_STATE_DIR")
    os.environ["BAYCTL_STATE_DIR"] = root
    yield root
    if before is None:
        os.environ.pop("BAYCTL_STATE_DIR", None)
    else:
        os.environ["BAYCTL_STATE_DIR"] = before


def leftovers(bay_name, state_root):
    """Everything of the bay still on this machine (empty when it is really gone)."""
    left = [f"netns {name}" for name in local_net.bay_namespaces(bay_name)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    bridge = local_net.bridge_name(bay_name)
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    left += [f"link {name}" for name in names if name == bridge or name.startswith(bridge + "-")]
    left += [f"pins {name}" for name in os.listdir(local_nodes.BPFFS)
             if name.startswith(f"{local_net.PREFIX}{bay_name}-")]
    if os.path.exists(local_nodes.socket_dir(bay_name)):
        left.append(f"sockets {local_nodes.socket_dir(bay_name)}")
    for pid in os.listdir("/proc"):
        if pid.isdigit() and os.path.join(state_root, bay_name) in " ".join(local_nodes.cmdline(int(pid))):
            left.append(f"process {pid}")
    if os.path.exists(os.path.join(state_root, bay_name)):
        left.append(f"state {os.path.join(state_root, bay_name)}")
    return left

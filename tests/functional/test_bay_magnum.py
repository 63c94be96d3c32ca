"""A magnum bay through the create pipeline, against the Magnum emulator and the REAL Heat tier.

`api.create_bay(provider="magnum")`: ensure-template makes the bay's own cluster template
(coe=mesos, an os_distro=ubuntu image: Magnum 15.x's mesos_ubuntu_v1 driver), the emulated
conductor builds the cluster's stack in the real Heat (bayctl's templates with stand-ins, as
Magnum's own templates need Nova and Neutron), then the same steps as every bay: wait,
collect-nodes, wait-for-agents, seed-policy and verify, on fake servers booted at the
addresses the cluster reports. `bayctl list` and `show` show it; `delete_bay` removes the
cluster and the template bayctl made, and nothing else.
"""

import json
import os
import subprocess
import sys
import threading

import pytest
from harness.prereq import require

from bayctl import api
from bayctl.create.context import Status
from bayctl.create.state import BayState
from bayctl.node.client import AgentClient
from bayctl.policy import load_policy

pytestmark = [pytest.mark.cloud, pytest.mark.root, pytest.mark.sshd]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB_DB = os.path.join(ROOT, "bayctl", "share", "policies", "web-db.yaml")


@pytest.fixture
def magnum_cloud(cloud_tier, cloud_conn):
    """What a Magnum 15 cloud has for a mesos cluster template: keypair, flavor, external
    network (emulated Nova/Neutron) and an ubuntu image (real Glance)."""
    emulators = getattr(cloud_tier, "emulators", None)
    if emulators is not None:  # in-process; a reused dev tier runs its own, as started (10.0.0)
        require(emulators.magnum is not None, "needs the Magnum emulator")
        emulators.magnum.configure(release="10.0.0", legacy=False)
    conn = cloud_conn
    if conn.compute.find_keypair("bbm-key") is None:
        conn.compute.create_keypair(name="bbm-key")
    if conn.compute.find_flavor("bbm.small") is None:
        conn.compute.create_flavor(name="bbm.small", vcpus=1, ram=1024, disk=10)
    if conn.network.find_network("bbm-public") is None:
        conn.network.create_network(name="bbm-public", is_router_external=True)
    image = conn.image.create_image(name="bbm-ubuntu", disk_format="raw", container_format="bare",
                                    data=b"\0" * 4096, os_distro="ubuntu", allow_duplicates=True, wait=True)
    yield {"image": "bbm-ubuntu", "flavor": "bbm.small", "keypair": "bbm-key",
           "external_network": "bbm-public"}
    conn.image.delete_image(image, ignore_missing=True)


def bayctl(*argv, env):
    done = subprocess.run([sys.executable, "-m", "bayctl.cli.main", *argv], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_magnum_bay_through_the_create_pipeline(magnum_cloud, cloud_conn, clouds_yaml, fake_servers, tmp_path,
                                                monkeypatch):
    from bayctl.providers import get_provider

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", clouds_yaml)
    monkeypatch.setenv("BAYCTL_STATE_DIR", str(tmp_path / "bays"))
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    options = {"poll_interval": 1}
    name, lines, outcome = "bbm-bay", [], {}

    def progress(line):
        lines.append(line)
        print(line, flush=True)  # shown with -s

    def create():
        try:
            outcome["bay"] = api.create_bay(
                name, provider="magnum", slaves=2, cloud="bayctl-test", ssh_user="root", ssh_key=str(key),
                policy=WEB_DB, verify=True, timeout="480", status=Status(progress),
                provider_options=options, **magnum_cloud)
        except Exception as err:  # reported by the assertion below
            outcome["error"] = err

    worker = threading.Thread(target=create, daemon=True)  # see test_bay_cloud.py
    worker.start()
    try:
        booted = fake_servers.boot_reported(name, (tmp_path / "id_ed25519.pub").read_text(), worker)
    finally:
        worker.join(480)
    assert "error" not in outcome, f"{outcome.get('error')}\n" + "\n".join(lines[-15:])

    bay = outcome["bay"]
    assert (bay.status, bay.provider) == ("READY", "magnum")
    assert bay.state.steps == {**{step: "done" for step in (
        "ensure-image", "ensure-template", "create-stack", "wait", "collect-nodes", "wait-for-agents",
        "seed-policy", "verify")}, "setup-distribution": "skipped"}  # auto: SSH seeding on cloud bays
    provider = get_provider("magnum", cloud_conn, poll_interval=1)
    cluster = provider.mc.clusters.get(name)
    template = provider.mc.cluster_templates.get(bay.state.template_id)
    assert (template.name, template.coe) == (f"bayctl-{name}", "mesos")
    assert cluster.cluster_template_id == template.uuid
    assert bay.state.ref == cluster.uuid and len(bay.slaves) == 2
    digest = load_policy(WEB_DB).digest
    for slave in bay.slaves:
        assert AgentClient(booted[slave.name].agent_socket).show_policy()["digest"] == digest
    # The verify step ran (a mismatch would have failed create); its probes crossed the slaves.
    assert any("probes match the policy" in line for line in lines), lines[-10:]

    env = dict(os.environ)
    listed = {row["name"]: row for row in bayctl("list", "-f", "json", env=env)}
    assert listed[name]["provider"] == "magnum" and listed[name]["status"] == "READY"
    assert listed[name]["policy_digest"] == digest[:12]
    shown = bayctl("show", name, "-f", "json", env=env)
    assert shown["provider"] == "magnum" and shown["status"] == "READY"

    assert api.delete_bay(name, provider_options=options)
    assert provider.find(name) is None
    assert f"bayctl-{name}" not in [t.name for t in provider.mc.cluster_templates.list()]
    assert BayState.load(name) is None

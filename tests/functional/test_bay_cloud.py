"""A heat bay through the SAME create steps as a local bay, against the REAL Heat tier.

Heat (real engine, bayctl's real templates, Nova/Neutron stand-ins) makes the stack; the
"servers" at the addresses its outputs name are then booted by this test as network
namespaces with their own sshd and agent (as cloud-init would start them, a little after
the stack completes), on a bridge routing exactly those test-net ranges to them. From
there the pipeline is the one a cloud bay runs: wait for the agents over SSH (host keys
trusted on first use), seed the policy, read it back, and `verify` measures the web-db matrix
between probe containers on both slaves: their subnets are derived from the slaves' private
addresses and routed host-gw by what the nodes' user data runs (`bayctl node hostgw`), over
the bridge that plays the bay's L2 network; delete removes the stack and state.
"""

import os
import subprocess
import threading

import pytest

from bayctl import api
from bayctl.create.context import Status
from bayctl.create.state import BayState
from bayctl.node.client import AgentClient
from bayctl.policy import load_policy

pytestmark = [pytest.mark.cloud, pytest.mark.root, pytest.mark.sshd]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB_DB = os.path.join(ROOT, "bayctl", "share", "policies", "web-db.yaml")


def test_heat_bay_runs_the_same_steps_as_a_local_bay(cloud_conn, clouds_yaml, tier_image, fake_servers,
                                                     tmp_path, monkeypatch):
    from bayctl.providers import get_provider
    from bayctl.providers.heat import templates_dir

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", clouds_yaml)
    monkeypatch.setenv("BAYCTL_STATE_DIR", str(tmp_path / "bays"))
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    options = {"environments": [os.path.join(templates_dir(), "environments", "standins.yaml")],
               "poll_interval": 1}
    name, lines, outcome = "bbc-heat", [], {}

    def progress(line):
        lines.append(line)
        print(line, flush=True)  # shown with -s: a cloud build is slow, and this is where it is

    def create():
        try:
            outcome["bay"] = api.create_bay(
                name, provider="heat", slaves=2, image=tier_image, flavor="m1.small", keypair="bbc-key",
                external_network="public", cloud="bayctl-test", ssh_user="root", ssh_key=str(key),
                policy=WEB_DB, timeout="480", status=Status(progress), provider_options=options)
        except Exception as err:  # reported by the assertion below
            outcome["error"] = err

    # A daemon: should this test fail before the servers boot, the create it started cannot
    # keep the session alive (it gives up by itself within the spec's timeout).
    worker = threading.Thread(target=create, daemon=True)
    worker.start()
    try:
        booted = fake_servers.boot_reported(name, (tmp_path / "id_ed25519.pub").read_text(), worker)
    finally:
        worker.join(480)
    assert "error" not in outcome, outcome.get("error")

    bay = outcome["bay"]
    assert (bay.status, bay.provider) == ("READY", "heat")
    assert bay.state.ref.startswith(f"{name}/")
    assert bay.state.steps == {"ensure-image": "done", "ensure-template": "skipped", "create-stack": "done",
                               "wait": "done", "collect-nodes": "done", "wait-for-agents": "done",
                               # distribution auto: cloud bays stay on SSH seeding (zookeeper is opt-in)
                               "setup-distribution": "skipped", "seed-policy": "done", "verify": "skipped"}
    assert any(line.startswith("   Waiting for the nodes [") and "CREATE_COMPLETE" in line for line in lines)
    # The slave's agent holds the policy, seeded over SSH; its host key was recorded on first
    # contact (trust on first use: a cloud provider knows no host keys up front).
    digest = load_policy(WEB_DB).digest
    with open(os.path.join(bay.state.directory, "known_hosts")) as handle:
        recorded = {line.split()[0] for line in handle if line.strip()}
    for slave in bay.slaves:
        assert AgentClient(booted[slave.name].agent_socket).show_policy()["digest"] == digest
        assert (slave.public_ip or slave.private_ip) in recorded

    # Each slave's container subnet follows from its private address (10.0.0.N -> 10.100.N.0/24),
    # as the node derived it at boot; verify's probes sit in its top quarter.
    subnets = bay.state.container_subnets
    assert subnets == {s.name: f"10.100.{s.private_ip.split('.')[-1]}.0/24" for s in bay.slaves}
    report = api.verify_bay(name)
    placed = {entry["node"] for entry in report.placement.values()}
    assert {s.name for s in bay.slaves} <= placed  # probes on both slaves: pairs cross the bay
    assert any(p.source_ip.rsplit(".", 1)[0] != p.target_ip.rsplit(".", 1)[0] and p.observed
               for p in report.pairs if p.target_ip.startswith("10.100."))
    assert report.pairs and report.ok, [m.describe() for m in report.mismatches]

    assert api.delete_bay(name, provider_options=options)
    assert get_provider("heat", cloud_conn).find(name) is None
    assert BayState.load(name) is None and not os.path.exists(os.path.join(tmp_path, "bays", name))

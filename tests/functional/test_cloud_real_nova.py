"""Opt-in: the tier's Nova is the REAL one (BAYCTL_REAL_NOVA=1: nova-api, conductor, scheduler,
compute with the libvirt driver under qemu TCG, and Placement; tests/harness/cloudtier/nova_real.py),
and a server boots from an image in the tier's real Glance: its guest writes a line to the
serial console, read back through Nova's console-output API.

Without BAYCTL_REAL_NOVA=1 the tier serves the Nova emulator and these tests are skipped (an
opt-in, not a missing prerequisite); with it, whatever the real services need and lack fails
the tier's start-up, under CI=true and outside it alike. With BAYCTL_REAL_NEUTRON=1 too, a second
server boots on a port of the real neutron-server (docs/platform-nova-neutron.md).
"""

import pytest
from harness.cloudtier import nova_real

pytestmark = pytest.mark.cloud


@pytest.fixture(scope="module")
def booter(cloud_tier):
    if not nova_real.enabled("BAYCTL_REAL_NOVA"):
        pytest.skip("opt-in: BAYCTL_REAL_NOVA=1 runs the real Nova instead of its emulator")
    from harness.cloudtier.boot_real import Booter

    emulators = getattr(cloud_tier, "emulators", None)
    assert emulators is not None, "BAYCTL_REAL_NOVA=1 needs the tier this session starts " \
        "(not one reused through BAYCTL_CLOUD_TIER_REUSE)"
    assert emulators.real_nova is not None and emulators.nova is None
    boot = Booter(cloud_tier)
    yield boot
    boot.close()


def test_real_nova_boots_a_server_whose_guest_runs(booter, cloud_conn):
    computes = [s for s in cloud_conn.compute.services() if s.binary == "nova-compute"]
    assert [(s.host, s.state) for s in computes] == [(nova_real.COMPUTE_HOST, "up")]

    result = booter.boot("rnv-test-none", None)

    assert (result["status"], result["host"]) == ("ACTIVE", nova_real.COMPUTE_HOST)
    assert result["console_marker"], result["console_tail"]


def test_real_nova_boots_a_server_on_a_real_neutron_port(booter, cloud_tier):
    if not nova_real.enabled("BAYCTL_REAL_NEUTRON"):
        pytest.skip("opt-in: BAYCTL_REAL_NEUTRON=1 runs the real neutron-server")
    result = booter.boot_on_network("rnv-test-net", cloud_tier.emulators.real_neutron)

    assert result["binding_vif_type"] == "ovs" and result["port_status"] == "ACTIVE", result
    assert result["status"] == "ACTIVE" and result["console_marker"], result
    assert len(result["fixed_ips"]) == 1


def test_real_services_are_what_the_environment_asked_for(cloud_tier):
    """Under CI=true an enabled real service must be the one serving: never the emulator."""
    emulators = getattr(cloud_tier, "emulators", None)
    if emulators is None:  # BAYCTL_CLOUD_TIER_REUSE: started elsewhere, its wiring not visible here
        pytest.skip("a reused tier: its services were chosen where it was started")
    assert (emulators.real_nova is not None) == nova_real.enabled("BAYCTL_REAL_NOVA")
    assert (emulators.real_neutron is not None) == nova_real.enabled("BAYCTL_REAL_NEUTRON")

"""The opt-in switches of the real Nova/Neutron tier (tests/harness/cloudtier/nova_real.py): only 1 and 0
mean something; any other value is refused, never read as "off" (the emulator would then run
while the operator believes the real service did)."""

import pytest
from harness.cloudtier import nova_real
from harness.cloudtier.tier import TierError


@pytest.mark.parametrize("value, expected", [("1", True), ("0", False), ("", False)])
def test_switch_values(monkeypatch, value, expected):
    monkeypatch.setenv("BAYCTL_REAL_NOVA", value)
    assert nova_real.enabled("BAYCTL_REAL_NOVA") is expected


def test_switch_unset_is_off(monkeypatch):
    monkeypatch.delenv("BAYCTL_REAL_NEUTRON", raising=False)
    assert nova_real.enabled("BAYCTL_REAL_NEUTRON") is False


@pytest.mark.parametrize("value", ["true", "yes", "2", " 1"])
def test_switch_refuses_other_values(monkeypatch, value):
    monkeypatch.setenv("BAYCTL_REAL_NOVA", value)
    with pytest.raises(TierError, match=r"BAYCTL_REAL_NOVA=.*set it to 1 \(real service\) or 0"):
        nova_real.enabled("BAYCTL_REAL_NOVA")


def test_boot_sector_is_one_bootable_partitioned_sector():
    """What Glance's format inspector and the BIOS need: the 0x55AA signature, one partition
    entry (Glance refuses an MBR without one), and the marker in the code's string."""
    from harness.cloudtier import bootsector

    data = bootsector.image_bytes()
    assert len(data) == bootsector.SIZE and data[510:512] == b"\x55\xaa"
    assert data[446 + 4] == 0x83 and data[446 + 16:510] == bytes(48)
    assert bootsector.MARKER in data[:446]

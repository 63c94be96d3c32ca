"""Two VM tiers on one machine (each on its BAYCTL_CLOUD_PORT_BASE) never share what the
fabric makes on the host: its namespace, host veth, link range and floating range."""

import ipaddress
import json
import os
import subprocess
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PRINT = ("import json; from harness.emulators import fabric as f; "
          "print(json.dumps([f.NAMESPACE, f.HOST_VETH, f.LINK_CIDR, f.EXTERNAL_CIDR]))")


def _names(base):
    env = dict(os.environ)
    env.pop("BAYCTL_CLOUD_PORT_BASE", None)
    if base is not None:
        env["BAYCTL_CLOUD_PORT_BASE"] = str(base)
    done = subprocess.run([sys.executable, "-c", _PRINT], cwd=TESTS, env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def test_the_default_tier_keeps_its_names():
    assert _names(None) == _names(15500) == ["bayctl-vmtier", "bvm-ext", "198.18.99.0/30", "198.18.100.0/24"]


def test_tiers_on_other_port_bases_share_nothing_on_the_host():
    tiers = [_names(base) for base in (15500, 19500, 19700)]
    for i, one in enumerate(tiers):
        assert len(one[1]) <= 15  # an interface name
        for other in tiers[i + 1:]:
            assert one[0] != other[0] and one[1] != other[1]
            for a, b in ((one[2], other[2]), (one[3], other[3])):
                assert not ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b)), (a, b)

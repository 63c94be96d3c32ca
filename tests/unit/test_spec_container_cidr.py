"""The cloud bays' container range: one subnet per node derived from its private address, the
same on the node (bayctl node hostgw) and in bayctl (collect-nodes), and the spec's limits."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bayctl.errors import SpecError
from bayctl.node.hostgw import cni_config, container_subnet, node_prefix, peer_routes
from bayctl.spec import load_spec


def test_the_documented_example():
    assert container_subnet("10.0.0.7", "10.0.0.0/24", "10.100.0.0/16") == "10.100.7.0/24"
    assert container_subnet("10.0.0.254", "10.0.0.0/24", "10.100.0.0/18") == "10.100.63.128/26"


@given(st.integers(1, 254), st.integers(1, 254), st.sampled_from(["10.100.0.0/16", "172.16.0.0/12",
                                                                  "192.168.0.0/18"]))
def test_subnets_are_disjoint_inside_the_range_and_routed_to_their_owner(a, b, containers):
    one = ipaddress.ip_network(container_subnet(f"10.0.0.{a}", "10.0.0.0/24", containers))
    other = ipaddress.ip_network(container_subnet(f"10.0.0.{b}", "10.0.0.0/24", containers))
    assert one.subnet_of(ipaddress.ip_network(containers))
    assert (one == other) == (a == b) and (a == b or not one.overlaps(other))
    routes = dict(peer_routes(f"10.0.0.{a}", "10.0.0.0/24", containers))
    assert str(one) not in routes and len(routes) == 253
    if a != b:
        assert routes[str(other)] == f"10.0.0.{b}"


def test_cni_pool_leaves_the_top_quarter_to_verify():
    from bayctl.verify.run import probe_subnets

    pool = ipaddress.ip_network(cni_config("10.100.7.0/24")["ipam"]["subnet"])
    probes = ipaddress.ip_network(probe_subnets({"s": "10.100.7.0/24"})["s"])
    assert pool.subnet_of(ipaddress.ip_network("10.100.7.0/24")) and not pool.overlaps(probes)


@pytest.mark.parametrize("cidr, says", [
    ("10.0.0.0/16", "overlaps the bay's private network 10.0.0.0/24"),
    ("10.100.0.0/20", "must be a /18 or larger"),
    ("10.100.0.1/16", "has host bits set"),
    ("bogus", "not an IPv4 network"),
])
def test_bad_range_is_a_spec_error_naming_the_field(tmp_path, cidr, says):
    path = tmp_path / "bay.yaml"
    path.write_text(f"provider: heat\nimage: i\nflavor: f\nkeypair: k\nexternal_network: public\n"
                    f"container_cidr: {cidr}\n")
    with pytest.raises(SpecError) as caught:
        load_spec(str(path), name="demo")
    assert caught.value.field == "container_cidr" and says in str(caught.value)
    assert node_prefix("10.0.0.0/24", "10.100.0.0/18") == 26


def test_magnum_takes_only_the_default_range():
    overrides = {"provider": "magnum", "image": "i", "flavor": "f", "keypair": "k", "external_network": "p"}
    assert load_spec(name="demo", overrides=overrides).container_cidr == "10.100.0.0/16"
    with pytest.raises(SpecError, match="use --provider heat"):
        load_spec(name="demo", overrides={**overrides, "container_cidr": "10.200.0.0/16"})

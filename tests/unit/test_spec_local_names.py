"""Names and addresses of a local bay's kernel objects: within IFNAMSIZ, prefixed, disjoint."""

import ipaddress

import pytest

from bayctl.providers import local_net
from bayctl.spec import MAX_LOCAL_SLAVES
from bayctl.verify.run import probe_subnets


@pytest.mark.parametrize("bay", ["demo", "a", "web-db-staging", "x" * 40])
def test_interface_names_fit_ifnamsiz_and_carry_the_prefix(bay):
    names = [local_net.bridge_name(bay), local_net.veth_name(bay, "master")]
    names += [local_net.veth_name(bay, f"slave{i}") for i in range(MAX_LOCAL_SLAVES)]
    assert all(len(name) <= 15 and name.startswith("bb-") for name in names), names
    assert len(set(names)) == len(names)
    assert local_net.netns_name(bay, "slave3") == f"bb-{bay}-slave3"


def test_each_bay_index_has_its_own_networks_and_slaves_do_not_overlap():
    seen = []
    for index in (0, 1, local_net.MAX_BAYS - 1):
        addressing = local_net.Addressing(index)
        nets = [addressing.node_net] + [ipaddress.ip_network(addressing.container_subnet(i))
                                        for i in range(MAX_LOCAL_SLAVES)]
        assert all(net.subnet_of(addressing.supernet) for net in nets)
        assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
        assert all(not addressing.supernet.overlaps(other) for other in seen)
        seen.append(addressing.supernet)
        assert ipaddress.ip_address(addressing.slave(MAX_LOCAL_SLAVES - 1)) in addressing.node_net
    with pytest.raises(Exception, match="out of range"):
        local_net.Addressing(local_net.MAX_BAYS)


def test_probes_use_the_top_quarter_of_each_container_subnet():
    assert probe_subnets({"slave0": "10.64.1.0/24", "slave1": "10.64.2.0/24"}) == {
        "slave0": "10.64.1.192/26", "slave1": "10.64.2.192/26"}

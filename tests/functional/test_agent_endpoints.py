"""Endpoints against a real agent, real namespaces and the real pinned endpoint map.

Client mistakes are 4xx naming the field; the node's own uplink is not attached to by
accident; the endpoint map holds exactly the endpoints the agent knows, whose interfaces
still exist: strays and endpoints of removed containers are dropped at start, when the
endpoints are listed and when one is added.
"""

import subprocess

import pytest
from harness.fixtures_agent import agent_prerequisites, cleanup_agent, new_agent
from harness.rawhttp import call

pytestmark = pytest.mark.root


@pytest.fixture
def lab():
    agent_prerequisites()
    from harness.netlab import NetLab

    with NetLab("bagte") as netlab:
        yield netlab


@pytest.fixture
def agent():
    agent_prerequisites()
    process = new_agent()
    try:
        yield process
    finally:
        cleanup_agent(process)


def map_endpoints(agent):
    """The pinned endpoint map itself: ip -> group tag."""
    from bayctl.node.datapath import Datapath

    return Datapath(agent.pin_dir).endpoints()


def delete_netns(netns):
    subprocess.run(["ip", "netns", "del", netns.name], check=True, capture_output=True)


# -- 4. client mistakes are 4xx naming the field -------------------------------------------------


def test_netns_that_is_a_regular_file_is_400_naming_netns(agent, tmp_path):
    agent.start()
    regular = tmp_path / "not-a-namespace"
    regular.write_text("")
    status, body = call(agent.socket_path, "POST", "/v1/endpoints",
                        {"ip": "10.251.60.1", "group": 100, "ifname": "eth0", "netns": str(regular)})
    assert status == 400, body
    assert f"netns {regular} is not a network namespace" == body["error"]
    assert agent.client.endpoints() == [] and map_endpoints(agent) == {}


def test_ifname_missing_in_its_namespace_is_400_naming_ifname(agent, lab):
    agent.start()
    empty = lab.netns("empty")
    status, body = call(agent.socket_path, "POST", "/v1/endpoints",
                        {"ip": "10.251.60.2", "group": 100, "ifname": "eth0", "netns": empty.path})
    assert status == 400, body
    assert body["error"] == f"ifname 'eth0' does not exist in netns {empty.path}"
    assert agent.client.endpoints() == [] and map_endpoints(agent) == {}


# -- 6. the node's uplink ------------------------------------------------------------------------


def test_uplink_of_the_agents_namespace_is_refused_unless_asked_for(agent, lab):
    """The agent runs in a namespace of its own whose eth0 carries the default route."""
    node, upstream = lab.netns("node"), lab.netns("up")
    lab.veth(node, "10.251.61.2/24", ifname="eth0", peer_netns=upstream, peer_addr="10.251.61.1/24")
    lab.veth(node, "10.251.62.2/24", ifname="eth1", peer_netns=upstream, peer_addr="10.251.62.1/24")
    node.ip("route", "add", "default", "via", "10.251.61.1", "dev", "eth0")
    agent.netns = node.path
    agent.start()

    for netns in (None, node.path, f"/proc/{agent.process.pid}/ns/net"):
        request = {"ip": "10.251.61.50", "group": 100, "ifname": "eth0"}
        if netns:
            request["netns"] = netns
        status, body = call(agent.socket_path, "POST", "/v1/endpoints", request)
        assert status == 409, (netns, body)
        for fragment in ("'eth0'", "default route", "allow_uplink"):
            assert fragment in body["error"], body
    assert map_endpoints(agent) == {}
    status, body = call(agent.socket_path, "POST", "/v1/endpoints",
                        {"ip": "10.251.61.50", "group": 100, "ifname": "eth0", "allow_uplink": "yes"})
    assert status == 400 and "allow_uplink" in body["error"], body

    # Another interface of the same namespace is an ordinary endpoint.
    status, body = call(agent.socket_path, "POST", "/v1/endpoints",
                        {"ip": "10.251.62.50", "group": 100, "ifname": "eth1"})
    assert status == 201, body
    # Said explicitly, the uplink is attached to.
    status, body = call(agent.socket_path, "POST", "/v1/endpoints",
                        {"ip": "10.251.61.50", "group": 100, "ifname": "eth0", "allow_uplink": True})
    assert status == 201, body
    assert map_endpoints(agent) == {"10.251.61.50": 100, "10.251.62.50": 100}
    filters = node.run("tc", "filter", "show", "dev", "eth0", "ingress").stdout
    assert "bpf" in filters, filters


# -- 7. strays in the endpoint map ---------------------------------------------------------------


def test_stray_endpoint_in_the_map_is_dropped_at_start(agent):
    from bayctl.node.datapath import Datapath

    agent.start()
    agent.client.add_endpoint("10.251.63.1", 100)
    agent.stop()
    Datapath(agent.pin_dir).set_endpoint("10.251.63.2", 300)     # a leftover the state never knew
    assert map_endpoints(agent) == {"10.251.63.1": 100, "10.251.63.2": 300}
    agent.start()
    assert map_endpoints(agent) == {"10.251.63.1": 100}
    assert [ep["ip"] for ep in agent.client.endpoints()] == ["10.251.63.1"]


# -- 8. endpoints whose interface is gone --------------------------------------------------------


def containers(lab, count):
    switch = lab.netns("sw")
    lab.bridge("br", netns=switch)
    found = []
    for index in range(1, count + 1):
        netns = lab.netns(f"c{index}")
        lab.veth(netns, f"10.251.64.{index}/24", peer_netns=switch, bridge="br")
        found.append((f"10.251.64.{index}", netns))
    return found


def test_endpoint_of_a_namespace_removed_while_the_agent_was_down_is_dropped_at_start(agent, lab):
    (gone_ip, gone), (kept_ip, kept) = containers(lab, 2)
    agent.start()
    agent.client.add_endpoint(gone_ip, 100, ifname="eth0", netns=gone.path)
    agent.client.add_endpoint(kept_ip, 200, ifname="eth0", netns=kept.path)
    agent.stop()
    delete_netns(gone)                      # podman rm -f with the agent down
    agent.start()
    assert map_endpoints(agent) == {kept_ip: 200}, "dropped at start, before anyone asks"
    assert [ep["ip"] for ep in agent.client.endpoints()] == [kept_ip]
    assert f"endpoint {gone_ip} dropped: its network namespace {gone.path} is gone" in agent.log()
    agent.stop()
    agent.start()                           # and it is gone from the saved state too
    assert [ep["ip"] for ep in agent.client.endpoints()] == [kept_ip]


def test_endpoint_whose_interface_left_is_dropped_when_listed(agent, lab):
    (left_ip, left), (kept_ip, kept) = containers(lab, 2)
    agent.start()
    agent.client.add_endpoint(left_ip, 100, ifname="eth0", netns=left.path)
    agent.client.add_endpoint(kept_ip, 200, ifname="eth0", netns=kept.path)
    left.ip("link", "del", "eth0")          # the namespace stays, its interface is gone
    assert [ep["ip"] for ep in agent.client.endpoints()] == [kept_ip]
    assert map_endpoints(agent) == {kept_ip: 200}


def test_endpoint_of_a_removed_namespace_is_dropped_when_another_is_added(agent, lab):
    (gone_ip, gone), (kept_ip, kept), (new_ip, new) = containers(lab, 3)
    agent.start()
    agent.client.add_endpoint(gone_ip, 100, ifname="eth0", netns=gone.path)
    agent.client.add_endpoint(kept_ip, 200, ifname="eth0", netns=kept.path)
    delete_netns(gone)
    agent.client.add_endpoint(new_ip, 100, ifname="eth0", netns=new.path)
    assert map_endpoints(agent) == {kept_ip: 200, new_ip: 100}

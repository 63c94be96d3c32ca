"""The Docker network + IPAM driver against a real dockerd and a real node agent.

Scenarios read like the seeds: containers started with `docker run --network <group net>`
reach each other exactly as the node's policy says, and nothing stays behind.
"""

import concurrent.futures
import ipaddress
import os
import time

import pytest
from harness.fixtures_docker import IMAGE, host_links, node_tcp

pytestmark = [pytest.mark.root, pytest.mark.docker]

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "bayctl", "share", "policies")


def policy(name):
    return os.path.join(EXAMPLES, name)


def httpd(*ports):
    """A container command serving busybox httpd on each port (then idling)."""
    serve = "; ".join(f"httpd -h /www -p {p}" for p in ports)
    # busybox httpd listens before it daemonizes: /tmp/ready means every port is open
    # (bplg_networks.run waits for it).
    return ("sh", "-c", f"{serve}; touch /tmp/ready; exec sleep 3600")


def endpoint_groups(agent):
    """ip -> group name, or the numeric tag for a tag the policy does not name."""
    return {e["ip"]: e["group"] if e["group"] is not None else e["tag"] for e in agent.client().endpoints()}


def test_web_db_other_reach_each_other_exactly_as_web_db_policy_says(
        bplg_agent, bplg_networks, bplg_net):
    bplg_agent.apply(policy("web-db.yaml"))
    web = bplg_networks("web", "10.131.0.0/16", group="web")
    db = bplg_networks("db", "10.132.0.0/16", group="db")
    run = bplg_networks.run
    web1 = run("bplg-web1", web, *httpd(80))
    web2 = run("bplg-web2", web, *httpd(80))
    db1 = run("bplg-db1", db, *httpd(5432))
    # A group per container on a shared network: tag 300 is in no rule of the policy.
    other = run("bplg-other", f"name={web},driver-opt=bayctl.group=300", *httpd(80, 5432))
    ip = {c: bplg_net.ip(c, web if c != db1 else db) for c in (web1, web2, db1, other)}
    groups = endpoint_groups(bplg_agent)
    assert [groups[ip[c]] for c in (web1, web2, db1)] == ["web", "web", "db"]
    assert str(groups[ip[other]]) == "300"

    # web reaches db on 5432 (routed across the two networks by the node), nothing else of db
    assert bplg_net.reaches(web1, ip[db1], 5432)
    assert not bplg_net.ping(web1, ip[db1])
    # db cannot open connections to web
    assert not bplg_net.tcp(db1, ip[web1], 80)
    assert not bplg_net.ping(db1, ip[web1])
    # members of web talk freely
    assert bplg_net.reaches(web1, ip[web2])
    assert bplg_net.reaches(web2, ip[web1], 80)
    # the group-300 container on web's own network is cut off both ways
    assert not bplg_net.tcp(other, ip[web1], 80)
    assert not bplg_net.tcp(web1, ip[other], 80)
    assert not bplg_net.tcp(other, ip[db1], 5432)
    # the node is `external`: it reaches web on 80, not db
    assert node_tcp(ip[web1], 80, tries=3)
    assert not node_tcp(ip[db1], 5432)


def test_stars_policy_holds_across_four_networks(bplg_agent, bplg_networks, bplg_net):
    bplg_agent.apply(policy("stars.yaml"))
    groups = ["management-ui", "client", "frontend", "backend"]
    nets = {g: bplg_networks(g[:6], f"10.{140 + i}.0.0/16", group=g) for i, g in enumerate(groups)}
    box = {g: bplg_networks.run(f"bplg-star-{g}", nets[g], *httpd(9000, 9001)) for g in groups}
    ip = {g: bplg_net.ip(box[g], nets[g]) for g in groups}

    allowed = [("management-ui", g, 9000) for g in ("client", "frontend", "backend")]
    allowed += [("client", "frontend", 9001), ("frontend", "backend", 9001)]
    allowed += [(g, "management-ui", 9001) for g in ("client", "frontend", "backend")]
    for src, dst, port in allowed:
        assert bplg_net.reaches(box[src], ip[dst], port), f"{src} -> {dst}:{port} should be allowed"
    denied = [("client", "backend", 9001), ("backend", "frontend", 9001), ("client", "management-ui", 9000),
              ("frontend", "client", 9000), ("backend", "client", 9001), ("client", "frontend", 9000)]
    for src, dst, port in denied:
        assert not bplg_net.tcp(box[src], ip[dst], port), f"{src} -> {dst}:{port} should be denied"
    # `*` includes external: the node reaches the UI's 9001, but not the backend.
    assert node_tcp(ip["management-ui"], 9001, tries=3)
    assert not node_tcp(ip["backend"], 9001)


def test_group_from_exposed_port_and_node_reachable_from_its_containers(
        bplg_agent, bplg_networks, bplg_net, bplg_dockerd):
    """The gist's form: `--expose 100` means group 100; {100 0} lets tag 100 reach the node."""
    bplg_agent.apply(policy("gist-numeric.yaml"))
    net = bplg_networks("gist", "10.150.0.0/16", group_from="expose")
    run = bplg_networks.run
    a100 = run("bplg-t100a", net, options=("--expose", "100"))
    b100 = run("bplg-t100b", net, options=("--expose", "100"))
    a200 = run("bplg-t200a", net, options=("--expose", "200"))
    b200 = run("bplg-t200b", net, options=("--expose", "200"))
    ip = {c: bplg_net.ip(c, net) for c in (a100, b100, a200, b200)}
    groups = endpoint_groups(bplg_agent)
    assert [groups[ip[c]] for c in (a100, b100, a200, b200)] == ["tag100", "tag100", "tag200", "tag200"]

    assert bplg_net.reaches(a100, ip[b100])
    assert bplg_net.reaches(a100, ip[a200])
    assert bplg_net.reaches(a200, ip[a100])
    assert not bplg_net.ping(a200, ip[b200])  # {200 200} is not in the gist's table

    # The node: its address on this network (the gateway, the route docker installed as
    # default) and its main address, both through the gateway interface.
    routes = bplg_dockerd.out("exec", a100, "ip", "route").split()
    gateway = routes[routes.index("default") + 2]
    assert ipaddress.ip_address(gateway) in ipaddress.ip_network("10.150.0.0/16")
    node_main = _node_main_address()
    assert bplg_net.reaches(a100, gateway)
    assert bplg_net.reaches(a100, node_main)
    assert not bplg_net.ping(a200, gateway)  # {200 0} is not allowed either


def _node_main_address():
    import subprocess

    out = subprocess.run(["ip", "-4", "-o", "route", "get", "1.1.1.1"], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[out.index("src") + 1]


def test_exposed_port_group_with_no_or_two_ports_is_refused_with_one_line(
        bplg_agent, bplg_networks, bplg_dockerd):
    bplg_agent.apply(policy("gist-numeric.yaml"))
    net = bplg_networks("gist2", "10.151.0.0/16", group_from="expose")
    result = bplg_dockerd.docker("run", "--rm", "--network", net, IMAGE, "true", check=False)
    assert result.returncode != 0
    assert b"must expose exactly one port, it exposes none" in result.stderr
    result = bplg_dockerd.docker("run", "--rm", "--network", net, "--expose", "100", "--expose", "200", IMAGE,
                                 "true", check=False)
    assert result.returncode != 0
    assert b"it exposes [100, 200]" in result.stderr


def test_container_on_two_networks_gets_one_default_route_and_reaches_both(
        bplg_agent, bplg_networks, bplg_net, bplg_dockerd):
    bplg_agent.apply(policy("web-db.yaml"))
    front = bplg_networks("front", "10.161.0.0/16", group="web")
    back = bplg_networks("back", "10.162.0.0/16", group="web")
    peer_front = bplg_networks.run("bplg-peerf", front)
    peer_back = bplg_networks.run("bplg-peerb", back)
    bplg_dockerd.docker("create", "--name", "bplg-both", "--network", front, IMAGE, "sleep", "3600")
    bplg_networks.containers.append("bplg-both")
    bplg_dockerd.docker("network", "connect", back, "bplg-both")
    bplg_dockerd.docker("start", "bplg-both")

    routes = bplg_dockerd.out("exec", "bplg-both", "ip", "route").splitlines()
    defaults = [r for r in routes if r.startswith("default")]
    assert len(defaults) == 1, routes
    for subnet in ("10.161.0.0/16", "10.162.0.0/16"):
        assert any(r.startswith(subnet) for r in routes), routes
    assert bplg_net.reaches("bplg-both", bplg_net.ip(peer_front, front))
    assert bplg_net.reaches("bplg-both", bplg_net.ip(peer_back, back))
    # and each peer reaches it back on its own network
    assert bplg_net.reaches(peer_back, bplg_net.ip("bplg-both", back))


def test_network_connect_driver_opt_gives_that_endpoint_its_own_group(
        bplg_agent, bplg_networks, bplg_net, bplg_dockerd):
    bplg_agent.apply(policy("web-db.yaml"))
    web = bplg_networks("cweb", "10.165.0.0/16", group="web")
    shared = bplg_networks("cshared", "10.166.0.0/16", group="web")
    box = bplg_networks.run("bplg-conn", web)
    bplg_dockerd.docker("network", "connect", "--driver-opt", "bayctl.group=db", shared, box)
    groups = endpoint_groups(bplg_agent)
    assert groups[bplg_net.ip(box, web)] == "web"
    assert groups[bplg_net.ip(box, shared)] == "db"
    shared_ip = bplg_net.ip(box, shared)
    bplg_dockerd.docker("network", "disconnect", shared, box)
    after = endpoint_groups(bplg_agent)
    assert after.get(bplg_net.ip(box, web)) == "web" and shared_ip not in after


def test_unknown_group_and_unknown_option_fail_with_one_clear_line(bplg_agent, bplg_networks, bplg_dockerd,
                                                                   bplg_plugin):
    bplg_agent.apply(policy("web-db.yaml"))
    create = ("network", "create", "-d", bplg_plugin.name, "--ipam-driver", bplg_plugin.name)
    result = bplg_dockerd.docker(*create, "--subnet", "10.171.0.0/16", "-o", "bayctl.grop=web", "bplg-typo",
                                 check=False)
    assert result.returncode != 0
    assert b"unknown network option bayctl.grop" in result.stderr
    net = bplg_networks("strict", "10.172.0.0/16", group="web")
    result = bplg_dockerd.docker("run", "--rm", "--network", f"name={net},driver-opt=bayctl.group=nosuch",
                                 IMAGE, "true", check=False)
    assert result.returncode != 0
    assert b"group 'nosuch' is not in the node's policy" in result.stderr
    assert b"Traceback" not in result.stderr
    result = bplg_dockerd.docker(*create, "bplg-nosubnet", check=False)
    assert result.returncode != 0 and b"needs an explicit subnet" in result.stderr


def test_sigkilled_container_leaves_no_link_endpoint_or_address(bplg_agent, bplg_networks, bplg_net,
                                                               bplg_dockerd, bplg_plugin):
    bplg_agent.apply(policy("web-db.yaml"))
    net = bplg_networks("kill", "10.181.0.0/16", group="web")
    before = host_links()
    box = bplg_networks.run("bplg-killme", net)
    ip = bplg_net.ip(box, net)
    assert ip in endpoint_groups(bplg_agent)
    assert len(host_links() - before) == 1  # the node end of its veth pair (ipvlan: none here)
    bplg_dockerd.docker("kill", "-s", "KILL", box)
    _until(lambda: bplg_dockerd.out("inspect", "-f", "{{.State.Running}}", box) == "false")
    # docker tears the network down on exit (no `docker rm` needed): Leave + DeleteEndpoint
    _until(lambda: ip not in endpoint_groups(bplg_agent))
    assert host_links() == before
    assert ip not in _held_addresses(bplg_plugin, "10.181.0.0/16")


def test_plugin_restart_while_containers_run_loses_nothing(bplg_agent, bplg_networks, bplg_net, bplg_plugin,
                                                          bplg_dockerd):
    bplg_agent.apply(policy("web-db.yaml"))
    web = bplg_networks("rweb", "10.191.0.0/16", group="web")
    db = bplg_networks("rdb", "10.192.0.0/16", group="db")
    w = bplg_networks.run("bplg-rw", web, *httpd(80))
    d = bplg_networks.run("bplg-rd", db, *httpd(5432))
    bplg_plugin.kill()  # no clean shutdown at all
    bplg_plugin.start()
    # running containers keep their links, registrations and policy
    assert bplg_net.reaches(w, bplg_net.ip(d, db), 5432)
    assert not bplg_net.tcp(d, bplg_net.ip(w, web), 80)
    # new containers join the networks docker created before the restart (no CreateNetwork replay)
    w2 = bplg_networks.run("bplg-rw2", web)
    w_ip, w2_ip = bplg_net.ip(w, web), bplg_net.ip(w2, web)
    assert w_ip != w2_ip  # the restarted IPAM remembers what it handed out
    assert bplg_net.reaches(w2, w_ip)
    # and removal after the restart still cleans up
    bplg_dockerd.docker("rm", "-f", w2)
    groups = endpoint_groups(bplg_agent)
    assert w_ip in groups and w2_ip not in groups
    assert w2_ip not in _held_addresses(bplg_plugin, "10.191.0.0/16")


def test_fifty_concurrent_containers_get_unique_addresses_right_groups_and_leave_nothing(
        bplg_agent, bplg_networks, bplg_net, bplg_dockerd, bplg_plugin):
    bplg_agent.apply(policy("web-db.yaml"))
    web = bplg_networks("many-w", "10.201.0.0/24", group="web")
    db = bplg_networks("many-d", "10.202.0.0/24", group="db")
    links_before = host_links()
    names = [f"bplg-many{i}" for i in range(50)]
    wanted = {n: ("web" if i % 2 == 0 else "db") for i, n in enumerate(names)}
    network_of = {"web": web, "db": db}

    def start(name):
        bplg_dockerd.docker("run", "-d", "--name", name, "--network", network_of[wanted[name]], IMAGE,
                            "sleep", "3600")

    bplg_networks.containers.extend(names)
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(start, names))

    ips = {n: bplg_net.ip(n, network_of[wanted[n]]) for n in names}
    assert len(set(ips.values())) == 50
    groups = endpoint_groups(bplg_agent)
    assert {n: groups.get(ips[n]) for n in names} == wanted
    for n in names:
        subnet = "10.201.0.0/24" if wanted[n] == "web" else "10.202.0.0/24"
        assert ipaddress.ip_address(ips[n]) in ipaddress.ip_network(subnet)
    assert len(host_links() - links_before) == 50

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(lambda n: bplg_dockerd.docker("rm", "-f", n), names))
    for n in names:
        bplg_networks.containers.remove(n)

    assert host_links() == links_before
    assert not set(ips.values()) & set(endpoint_groups(bplg_agent))
    # only the gateways stay reserved
    for subnet in ("10.201.0.0/24", "10.202.0.0/24"):
        assert list(_held_addresses(bplg_plugin, subnet).values()) == ["gateway"]
    assert not bplg_plugin.state()["endpoints"]


def _held_addresses(plugin, subnet):
    pool = plugin.ipam()["pools"].get(subnet)
    return pool["addresses"] if pool else {}


def test_removing_networks_removes_their_bridges_and_pools(bplg_agent, bplg_dockerd, bplg_plugin):
    bplg_agent.apply(policy("web-db.yaml"))
    before = host_links()
    bplg_dockerd.docker("network", "create", "-d", bplg_plugin.name, "--ipam-driver", bplg_plugin.name,
                        "--subnet", "10.211.0.0/16", "-o", "bayctl.group=web", "bplg-gone")
    assert len(host_links() - before) == 1
    bplg_dockerd.docker("network", "rm", "bplg-gone")
    assert host_links() == before
    assert "10.211.0.0/16" not in bplg_plugin.ipam()["pools"]


def _until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.1)

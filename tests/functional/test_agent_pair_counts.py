"""Pair counters count each packet once when the datapath is attached INSIDE the containers.

The agent attaches the classifier on each member's eth0 inside the member's own namespace
(the ipvlan design: the program sits on the slave in the container). A packet between two
local endpoints then crosses two hooks (the sender's egress, the receiver's ingress), and
both interfaces are `eth0` with the same ifindex in their own namespaces: only the namespace
cookie the agent records tells the sender's hook from the receiver's. One ping of N echoes
must count exactly N requests (a -> b) and N replies (b -> a), also after an agent restart.
"""

import socket

import pytest
from harness.netlab import _sh

from bayctl.node.datapath import Datapath
from bayctl.node.netns import run_in_netns

pytestmark = pytest.mark.root

PINGS = 5
POLICY = """apiVersion: bayctl/v1
kind: GroupPolicy
groups:
  ping: 310
  pong: 320
rules:
  - from: ping
    to: pong
    ports: [icmp]
"""
PING, PONG = 310, 320


def _ifindex_inside(member):
    return run_in_netns(member.netns, socket.if_nametoindex, member.ifname)


def _ping_and_count(lab, sender, receiver):
    """Send PINGS echoes sender -> receiver; return the allowed packets each way it added."""
    datapath = Datapath(lab.agent.pin_dir)
    zero = {"allowed_packets": 0, "dropped_packets": 0}
    before = datapath.counters()
    done = _sh("nsenter", f"--net={sender.netns}", "busybox", "ping", "-c", PINGS, "-i", "0.2", "-W", 2,
               receiver.ip, check=False)
    assert done.returncode == 0, f"ping {sender.ip} -> {receiver.ip} failed: {done.stdout}{done.stderr}"
    after = datapath.counters()
    datapath.close()

    def added(pair, field):
        return after.get(pair, zero)[field] - before.get(pair, zero)[field]

    return {
        "requests": added((PING, PONG), "allowed_packets"),
        "replies": added((PONG, PING), "allowed_packets"),
        "dropped": added((PING, PONG), "dropped_packets") + added((PONG, PING), "dropped_packets"),
    }


@pytest.fixture(scope="module")
def pair(agent_lab):
    sender, receiver = agent_lab.members[0], agent_lab.members[1]
    # The case this module is about: both interfaces carry one ifindex, each in its namespace.
    assert _ifindex_inside(sender) == _ifindex_inside(receiver)
    agent_lab.client.apply_policy(POLICY)
    for member in agent_lab.members:
        agent_lab.client.remove_endpoint(member.ip)
    agent_lab.client.add_endpoint(sender.ip, "ping", ifname=sender.ifname, netns=sender.netns)
    agent_lab.client.add_endpoint(receiver.ip, "pong", ifname=receiver.ifname, netns=receiver.netns)
    return agent_lab, sender, receiver


def test_ping_counts_each_echo_once_per_direction(pair):
    lab, sender, receiver = pair
    assert _ping_and_count(lab, sender, receiver) == {"requests": PINGS, "replies": PINGS, "dropped": 0}


def test_restarted_agent_counts_once_too(pair):
    lab, sender, receiver = pair
    lab.agent.kill()
    # What a restart must repair: entries carrying no interface identity (as written by an
    # agent that did not record it), which would make every hook count.
    datapath = Datapath(lab.agent.pin_dir)
    datapath.set_endpoint(sender.ip, PING)
    datapath.set_endpoint(receiver.ip, PONG)
    datapath.close()
    lab.agent.start()
    assert {ep["ip"] for ep in lab.client.endpoints()} == {sender.ip, receiver.ip}
    assert _ping_and_count(lab, sender, receiver) == {"requests": PINGS, "replies": PINGS, "dropped": 0}

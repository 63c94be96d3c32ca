"""bayctl's IPAM: unique addresses under concurrent processes, state that survives restarts."""

import ipaddress
import json
import multiprocessing
import os

import pytest

from bayctl.errors import NodeError
from bayctl.node.ipam import Ipam


def _allocate_many(path, pool, count, queue):
    ipam = Ipam(path)  # a fresh process, as with concurrent CNI plugin invocations
    queue.put([ipam.allocate(pool, owner=f"pid{os.getpid()}-{i}") for i in range(count)])


def test_concurrent_processes_never_get_the_same_address(tmp_path):
    path = tmp_path / "ipam.json"
    pool = Ipam(path).create_pool("10.9.0.0/24")
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_allocate_many, args=(str(path), pool, 25, queue))
               for _ in range(8)]
    for w in workers:
        w.start()
    got = [address for _ in workers for address in queue.get(timeout=60)]
    for w in workers:
        w.join(30)
    assert len(got) == 200 and len(set(got)) == 200
    assert len(Ipam(path).addresses(pool)) == 200


def test_reservations_survive_a_restart_and_released_addresses_are_not_reused_at_once(tmp_path):
    path = tmp_path / "ipam.json"
    first = Ipam(path)
    pool = first.create_pool("10.9.1.0/29")
    gateway = first.allocate(pool, "10.9.1.1", owner="gateway")
    a = first.allocate(pool, owner="a")
    again = Ipam(path)  # "restart"
    assert again.addresses(pool) == {"10.9.1.1": "gateway", a.split("/")[0]: "a"}
    again.release(pool, a)
    b = again.allocate(pool, owner="b")
    assert b != a and b != gateway and b.endswith("/29")


def test_exhaustion_overlap_and_foreign_addresses_are_clear_errors(tmp_path):
    ipam = Ipam(tmp_path / "ipam.json")
    pool = ipam.create_pool("10.9.2.0/30")
    ipam.allocate(pool)
    ipam.allocate(pool)
    with pytest.raises(NodeError, match="exhausted"):
        ipam.allocate(pool)
    with pytest.raises(NodeError, match="overlaps pool 10.9.2.0/30"):
        ipam.create_pool("10.9.0.0/16")
    with pytest.raises(NodeError, match="not a host address"):
        ipam.allocate(ipam.create_pool("10.9.3.0/24"), "10.9.4.1")
    with pytest.raises(NodeError, match="only IPv4"):
        ipam.create_pool("fd00::/64")


def test_owner_release_frees_only_that_owner(tmp_path):
    ipam = Ipam(tmp_path / "ipam.json")
    pool = ipam.create_pool("10.9.5.0/24")
    mine = ipam.allocate(pool, owner="ctr1/eth0")
    other = ipam.allocate(pool, owner="ctr2/eth0")
    assert ipam.release_owner(pool, "ctr1/eth0") == [mine.split("/")[0]]
    assert ipam.release_owner(pool, "ctr1/eth0") == []
    assert list(ipam.addresses(pool)) == [other.split("/")[0]]


def test_state_file_is_always_complete_json(tmp_path):
    path = tmp_path / "ipam.json"
    ipam = Ipam(path)
    pool = ipam.create_pool("10.9.6.0/24")
    for i in range(20):
        ipam.allocate(pool, owner=str(i))
        with open(path) as f:
            assert len(json.load(f)["pools"][pool]["addresses"]) == i + 1
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".state-")]  # no temp files left
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("10.9.6.0/24") for ip in ipam.addresses(pool))

"""The locked JSON state file (node/statefile.py) shared by the IPAM's concurrent writers."""

import pytest

from bayctl.node.ipam import Ipam
from bayctl.node.statefile import StateFile


@pytest.fixture
def writes(monkeypatch):
    """The states written to disk (each one a temp file, two fsyncs and a rename, under the lock)."""
    seen = []
    original = StateFile._write

    def counted(store, state):
        seen.append(state)
        original(store, state)

    monkeypatch.setattr(StateFile, "_write", counted)
    return seen


def test_an_update_that_changes_nothing_does_not_rewrite_the_file(tmp_path, writes):
    store = StateFile(tmp_path / "state.json", default={"pools": {}})
    with store.update() as state:
        state["pools"]["a"] = {"subnet": "10.0.0.0/24"}
    assert len(writes) == 1
    with store.update() as state:
        state["pools"]["a"]["subnet"] = "10.0.0.0/24"  # the same value again
    assert len(writes) == 1
    with store.update() as state:
        state["pools"]["b"] = {"subnet": "10.0.1.0/24"}
    assert len(writes) == 2 and store.read()["pools"]["b"] == {"subnet": "10.0.1.0/24"}


def test_reusing_a_pool_and_releasing_nothing_leave_the_ipam_file_alone(tmp_path, writes):
    # Every CNI ADD "creates" its network's pool (reuse) and every DEL releases what it holds,
    # often nothing: each needless rewrite holds the lock all concurrent calls queue on.
    ipam = Ipam(str(tmp_path / "ipam.json"))
    pool = ipam.create_pool("10.9.0.0/24", reuse=True)
    address = ipam.allocate(pool, owner="c1/eth0")
    assert len(writes) == 2
    assert ipam.create_pool("10.9.0.0/24", reuse=True) == pool
    assert ipam.release_owner(pool, "c2/eth0") == []
    assert len(writes) == 2
    assert ipam.owned(pool, "c1/eth0") == [address]

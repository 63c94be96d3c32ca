"""Which way a new bay's policy travels (create's setup-distribution step): `auto` takes the
ZooKeeper a cloud bay's master states it runs (the provider interface's master_zookeeper,
bayctl's Heat master signalling it once it answered), and falls back to SSH seeding when
nothing is stated or it cannot be set up; `zookeeper` insists."""

import json
import os
from types import SimpleNamespace

import pytest

from bayctl.create.steps.distribution import SetupDistribution
from bayctl.distribution import SSH, STATE_KEY
from bayctl.distribution.zookeeper import STATE_FILE
from bayctl.errors import SeedError, SpecError
from bayctl.model import MASTER, Node
from bayctl.providers.base import ProviderInfo
from bayctl.providers.heat import stated_zookeeper


@pytest.mark.parametrize("data, stated", [
    ('{"1": "10.0.0.5:2181"}', "10.0.0.5:2181"),
    ({"1": "10.0.0.5:2181"}, "10.0.0.5:2181"),
    ('{"1": ""}', None),                      # an image without ZooKeeper signals no data
    ('{"1": null}', None),                    # a signal without data (test stand-ins)
    ("{}", None), (None, None), ("not json", None),
    ('{"1": "10.0.0.5:2181", "2": "10.0.0.6:2181"}', None),   # one master, one statement
    ('{"1": "$(reboot):2181"}', None), ('{"1": "10.0.0.5:99999"}', None), ('{"1": "10.0.0.5"}', None),
])
def test_what_a_master_states_is_one_address_and_port_or_nothing(data, stated):
    assert stated_zookeeper(data) == stated


class _Provider:
    name = "heat"
    info = ProviderInfo()

    def __init__(self, stated):
        self.stated = stated

    def master_zookeeper(self, ref):
        return self.stated


class _State(SimpleNamespace):
    def save(self):
        self.saved = True


def _ctx(tmp_path, distribution, stated):
    master = Node(name="b-master", role=MASTER, public_ip="198.18.100.5", private_ip="10.0.0.5")
    state = _State(ref="b/1", master=master, nodes=[master], extra={}, directory=str(tmp_path), name="b")
    return SimpleNamespace(spec=SimpleNamespace(distribution=distribution, name="b"), state=state,
                           provider=_Provider(stated), login=SimpleNamespace(user="debian", key="k"),
                           status=None)


def test_auto_takes_the_zookeeper_the_master_states(tmp_path, monkeypatch):
    ctx = _ctx(tmp_path, "auto", "10.0.0.5:2181")
    calls = []
    monkeypatch.setattr("bayctl.distribution.bootstrap.setup_zookeeper",
                        lambda state, nodes, hosts, **kw: calls.append((hosts, kw["tunnel"],
                                                                        kw["owns_root"])))
    step = SetupDistribution()
    assert step.skip_reason(ctx) is None
    step.run(ctx)
    assert calls == [("10.0.0.5:2181", True, False)]   # through the master's SSH; "/" is Mesos'


def test_auto_without_a_statement_seeds_over_ssh(tmp_path):
    ctx = _ctx(tmp_path, "auto", None)
    reason = SetupDistribution().skip_reason(ctx)
    assert "states no ZooKeeper" in reason and "SSH" in reason
    assert ctx.state.extra[STATE_KEY] == SSH


def test_zookeeper_insists_on_the_masters_port_when_nothing_is_stated(tmp_path, monkeypatch):
    ctx = _ctx(tmp_path, "zookeeper", None)
    monkeypatch.setattr("bayctl.distribution.bootstrap.setup_zookeeper",
                        lambda *a, **kw: (_ for _ in ()).throw(SeedError("did not answer")))
    step = SetupDistribution()
    assert step.skip_reason(ctx) is None
    with pytest.raises(SeedError):
        step.run(ctx)


def test_auto_falls_back_to_ssh_and_keeps_nothing_of_zookeeper_when_setup_fails(tmp_path, monkeypatch):
    ctx = _ctx(tmp_path, "auto", "10.0.0.5:2181")
    lines = []
    ctx.status = SimpleNamespace(update=lines.append)

    def setup(state, nodes, hosts, **kw):
        with open(os.path.join(state.directory, STATE_FILE), "w") as handle:
            json.dump({"hosts": hosts}, handle)
        raise SeedError("the bay's ZooKeeper (10.0.0.5:2181 through the master's SSH) did not answer")

    forgotten = []
    monkeypatch.setattr("bayctl.distribution.bootstrap.setup_zookeeper", setup)
    monkeypatch.setattr("bayctl.distribution.bootstrap.forget_zookeeper",
                        lambda state, nodes, **kw: forgotten.append((nodes, kw)))
    SetupDistribution().run(ctx)
    assert ctx.state.extra[STATE_KEY] == SSH and ctx.state.saved
    assert not os.path.exists(os.path.join(str(tmp_path), STATE_FILE))
    # agents a partial setup configured drop theirs too (over the bay's SSH login)
    assert forgotten == [(ctx.state.nodes, {"ssh_user": "debian", "ssh_key": "k"})]
    assert len(lines) == 1 and "did not answer" in lines[0] and "over SSH" in lines[0]


def test_auto_falls_back_even_when_an_agent_cannot_be_told_to_forget(tmp_path, monkeypatch):
    ctx = _ctx(tmp_path, "auto", "10.0.0.5:2181")
    monkeypatch.setattr("bayctl.distribution.bootstrap.setup_zookeeper",
                        lambda *a, **kw: (_ for _ in ()).throw(SeedError("slave0: did not connect")))
    monkeypatch.setattr("bayctl.distribution.bootstrap.forget_zookeeper",
                        lambda *a, **kw: (_ for _ in ()).throw(SeedError("slave0: unreachable")))
    SetupDistribution().run(ctx)
    assert ctx.state.extra[STATE_KEY] == SSH


def test_zookeeper_on_a_bay_without_a_master_address_says_so(tmp_path):
    ctx = _ctx(tmp_path, "zookeeper", None)
    ctx.state.master = None
    with pytest.raises(SpecError):
        SetupDistribution().run(ctx)

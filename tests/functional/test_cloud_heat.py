"""The heat provider against the REAL Heat engine running bayctl's REAL templates.

Nova/Neutron leaf resources are stand-ins (bayctl/share/heat_templates/environments/standins.yaml):
the engine still resolves the nested templates, the ResourceGroup, the software configs
and wait-condition handles, the outputs, and a failure three stacks deep.
"""

import os

import pytest

from bayctl.errors import CloudError, StackFailed
from bayctl.providers import MASTER, SLAVE, BayRequest, get_provider
from bayctl.providers.heat import templates_dir

pytestmark = pytest.mark.cloud

STANDINS = os.path.join(templates_dir(), "environments", "standins.yaml")


def _request(name, **kw):
    values = dict(name=name, slaves=3, image="bayctl-mesos", keypair="bayctl-key", master_flavor="m1.small",
                  slave_flavor="m1.small", external_network="public", timeout=600)
    values.update(kw)
    return BayRequest(**values)


@pytest.fixture
def heat_provider(cloud_conn):
    provider = get_provider("heat", cloud_conn, environments=[STANDINS], poll_interval=1)
    made = []
    yield provider, made
    for ref in made:
        provider.delete(ref, timeout=300)


def test_create_reports_progress_outputs_nodes_then_delete(heat_provider):
    provider, made = heat_provider
    ref = provider.create(_request("bcl-heat-ok"))
    made.append(ref)
    seen = []
    status = provider.wait(ref, progress=seen.append, timeout=600)
    assert status.status == "CREATE_COMPLETE"
    # Events arrived while it built, nested ones named by their path, with a growing count.
    messages = [p.message for p in seen]
    assert any(m.startswith("slaves.2.server") for m in messages), messages
    assert any(m == "master CREATE_COMPLETE" for m in messages)
    assert seen[-1].status == "CREATE_COMPLETE" and seen[-1].done == seen[-1].total > 20
    assert [p.done for p in seen] == sorted(p.done for p in seen)

    nodes = provider.nodes(ref)
    assert [n.role for n in nodes] == [MASTER, SLAVE, SLAVE, SLAVE]
    assert nodes[0].name == "bcl-heat-ok-master"
    assert [n.name for n in nodes[1:]] == [f"bcl-heat-ok-slave-{i}" for i in range(3)]
    assert all(n.private_ip.startswith("10.0.0.") and n.public_ip.startswith("198.51.100.") for n in nodes)
    out = provider.outputs(ref)
    assert out["api_address"] == out["mesos_master"] == nodes[0].public_ip
    assert out["mesos_master_private"] == nodes[0].private_ip

    # Creating again resumes the same stack instead of making a second one.
    assert provider.create(_request("bcl-heat-ok")) == ref
    assert [b.name for b in provider.list()].count("bcl-heat-ok") == 1

    gone = []
    provider.delete(ref, progress=gone.append, timeout=300)
    made.remove(ref)
    assert gone[-1].status == "DELETE_COMPLETE"
    assert "bcl-heat-ok" not in [b.name for b in provider.list()]
    provider.delete(ref)  # deleting what is gone is not an error


def test_failure_is_diagnosed_to_the_deepest_resource(heat_provider, cloud_conn):
    from bayctl.cloud.diagnosis import stack_failures

    provider, made = heat_provider
    # The stand-in server fails its boot for this flavor (OS::Heat::TestResource fail: true).
    ref = provider.create(_request("bcl-heat-fail", slaves=2, slave_flavor="bayctl-test-fail"))
    made.append(ref)
    with pytest.raises(StackFailed) as info:
        provider.wait(ref, timeout=600)
    err = info.value
    assert err.resource in ("slaves.0.server.boot", "slaves.1.server.boot")
    assert err.resource_type == "OS::Heat::TestResource"
    assert "Test Resource failed" in err.reason
    assert "\n" not in str(err)
    paths = [f.path for f in stack_failures(cloud_conn, ref)]
    assert paths == ["slaves.0.server.boot", "slaves.1.server.boot"]  # never the group or the member


def test_timeout_is_honoured(heat_provider):
    provider, made = heat_provider
    ref = provider.create(_request("bcl-heat-slow", slaves=1))
    made.append(ref)
    with pytest.raises(CloudError, match="not finished after 0s"):
        provider.wait(ref, timeout=0)


def test_refusals_are_one_line_and_create_nothing(heat_provider):
    provider, _ = heat_provider
    with pytest.raises(CloudError, match="label.*no_such_label.*unknown"):
        provider.create(_request("bcl-heat-bad", labels={"no_such_label": "x"}))
    with pytest.raises(CloudError, match="needs keypair"):
        provider.create(_request("bcl-heat-bad", keypair=None))
    assert "bcl-heat-bad" not in [b.name for b in provider.list()]


def test_labels_pass_through_as_template_parameters(heat_provider):
    provider, made = heat_provider
    ref = provider.create(_request("bcl-heat-labels", slaves=0,
                                   labels={"mesos_slave_isolation": "cgroups/cpu"}))
    made.append(ref)
    stack = provider.hc.stacks.get(ref)
    assert stack.parameters["mesos_slave_isolation"] == "cgroups/cpu"
    assert stack.parameters["number_of_slaves"] == "0"


SIGNALLED = os.path.join(templates_dir(), "environments", "standins-signalled.yaml")


@pytest.mark.parametrize("outcome", ["SUCCESS", "FAILURE"])
def test_real_wait_conditions_complete_only_when_nodes_signal(cloud_conn, outcome):
    """The production wait conditions (real OS::Heat::WaitCondition) with the nodes' notify
    command taken from the user data Heat rendered, sent as the node's script would."""
    from harness.emulators.nodeboot import NodeBooter

    provider = get_provider("heat", cloud_conn, environments=[STANDINS, SIGNALLED], poll_interval=1)
    name = f"bcl-heat-signal-{outcome.lower()}"
    ref = provider.create(_request(name, slaves=1))
    booter = NodeBooter(provider.hc, ref, status=outcome, reason="mesos-slave does not answer"
                        if outcome == "FAILURE" else "services are up")
    booter.start()
    try:
        if outcome == "SUCCESS":
            assert provider.wait(ref, timeout=600).status == "CREATE_COMPLETE"
            assert sorted(booter.signalled) == [f"{name}-master", f"{name}-slave-0"]
        else:
            with pytest.raises(StackFailed) as info:
                provider.wait(ref, timeout=600)
            assert info.value.resource.endswith("wait_condition")
            assert info.value.resource_type == "Bay::WaitCondition"  # the template's own type name
            assert "mesos-slave does not answer" in info.value.reason
    finally:
        booter.stop()
        provider.delete(ref, timeout=300)

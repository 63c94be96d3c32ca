"""The agent's ZooKeeper configuration (PUT /v1/distribution): a bad one is refused with the
field named and the secret never echoed, and nothing is saved or started."""

import json

import pytest

from bayctl.node.api import AgentApi
from bayctl.node.unixhttp import ApiError
from bayctl.node.zkwatch import CONFIG_FILE, Distribution, check_config

SECRET = "s3cr3t-never-shown"
GOOD = {"hosts": "10.64.0.2:2181", "root": "/bayctl/demo", "node": "slave0", "auth": f"agent:{SECRET}",
        "owner": "bayctl:abc="}


class _Agent:
    def __init__(self, state_dir):
        self.policy_listeners = []   # the real Agent's hook, which a watcher joins
        self.distribution = Distribution(self, str(state_dir))


@pytest.mark.parametrize("change, field", [
    ({"auth": "no-colon-" + SECRET}, "auth"),
    ({"root": "relative/" + SECRET}, "root"),
    ({"node": "a/b"}, "node"),
    ({"hosts": ""}, "hosts"),
    ({"extra": SECRET}, "extra"),
])
def test_bad_config_names_the_field_never_the_secret(change, field):
    with pytest.raises(ValueError) as raised:
        check_config({**GOOD, **change})
    assert field in str(raised.value) and SECRET not in str(raised.value)


def test_api_refuses_a_bad_config_without_saving_or_echoing_it(tmp_path):
    api = AgentApi(_Agent(tmp_path))
    body = json.dumps({**GOOD, "auth": "no-colon-" + SECRET}).encode()
    with pytest.raises(ApiError) as raised:
        api.handle("PUT", "/v1/distribution", body, {})
    assert raised.value.status == 400 and SECRET not in str(raised.value)
    assert not (tmp_path / CONFIG_FILE).exists()
    with pytest.raises(ApiError) as raised:
        api.handle("PUT", "/v1/distribution", b"{not json " + SECRET.encode(), {})
    assert raised.value.status == 400 and SECRET not in str(raised.value)
    assert api.handle("GET", "/v1/distribution", b"", {}) == (200, {"hosts": None})


def test_delete_stops_watching_and_forgets_the_saved_secret(tmp_path):
    """A bay that went back to SSH seeding: the agent keeps no secret, and no restart watches."""
    import socket

    with socket.socket() as unused:   # a loopback port nothing listens on: the watcher retries it
        unused.bind(("127.0.0.1", 0))
        hosts = f"127.0.0.1:{unused.getsockname()[1]}"
    agent = _Agent(tmp_path)
    api = AgentApi(agent)
    status, shown = api.handle("PUT", "/v1/distribution", json.dumps({**GOOD, "hosts": hosts}).encode(), {})
    assert status == 200 and shown["hosts"] == hosts and SECRET not in json.dumps(shown)
    assert SECRET in (tmp_path / CONFIG_FILE).read_text()
    assert api.handle("DELETE", "/v1/distribution", b"", {}) == (200, {"hosts": None})
    assert not (tmp_path / CONFIG_FILE).exists() and agent.distribution.watcher is None
    assert agent.policy_listeners == []
    restarted = Distribution(_Agent(tmp_path), str(tmp_path))
    restarted.start_saved()
    assert restarted.watcher is None
    assert api.handle("DELETE", "/v1/distribution", b"", {}) == (200, {"hosts": None})  # again: no-op

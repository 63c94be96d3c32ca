"""The agent's state store and its HTTP-over-unix-socket transport, without root.

The server here is the agent's real transport (bayctl.node.unixhttp) serving a small
application object; the client is the real AgentClient.
"""

import json
import os
import stat
import threading

import pytest

from bayctl.errors import NodeError
from bayctl.node.client import AgentClient
from bayctl.node.state import StateStore
from bayctl.node.unixhttp import ApiError, JsonHandler, UnixHTTPServer


class EchoApp:
    """Answers like the agent does: a document, or an ApiError."""

    def handle(self, method, path, body, headers):
        if path == "/v1/health":
            return 200, {"ok": True, "digest": None}
        if path == "/v1/policy" and method == "PUT":
            raise ApiError(400, f"<request>:3: groups: got {len(body)} bytes")
        raise ApiError(404, f"no such resource: {path}")


@pytest.fixture
def server(tmp_path):
    path = str(tmp_path / "run" / "agent.sock")
    srv = UnixHTTPServer(path, JsonHandler, EchoApp())
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    srv.remove_socket()


def test_state_round_trip_and_atomic_files(tmp_path):
    store = StateStore(str(tmp_path / "state"))
    assert store.load_policy_text() is None and store.load_endpoints() == []
    store.save_policy_text("groups: {web: 100}\n")
    store.save_endpoints([{"ip": "10.0.0.2", "tag": 100}, {"ip": "10.0.0.1", "tag": 200}])
    assert store.load_policy_text() == "groups: {web: 100}\n"
    assert [ep["ip"] for ep in store.load_endpoints()] == ["10.0.0.1", "10.0.0.2"]
    assert sorted(os.listdir(store.state_dir)) == ["endpoints.json", "policy.yaml"], "no temp files left"
    assert stat.S_IMODE(os.stat(store.state_dir).st_mode) == 0o700
    store.clear_policy()
    store.clear_policy()            # idempotent
    assert store.load_policy_text() is None


def test_unreadable_endpoint_state_names_the_file(tmp_path):
    store = StateStore(str(tmp_path))
    (tmp_path / "endpoints.json").write_text("{not json")
    with pytest.raises(NodeError, match=r"endpoints\.json: unreadable endpoint state"):
        store.load_endpoints()
    (tmp_path / "endpoints.json").write_text(json.dumps({"endpoints": "nope"}))
    with pytest.raises(NodeError, match="not a list"):
        store.load_endpoints()
    (tmp_path / "endpoints.json").write_text(json.dumps({"endpoints": [{"ip": "10.0.0.1", "tag": "web"}]}))
    with pytest.raises(NodeError, match=r"endpoints\[0\] needs"):
        store.load_endpoints()


def test_socket_is_created_0600_and_answers(server):
    assert stat.S_IMODE(os.stat(server.server_address).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(server.server_address)).st_mode) == 0o700
    assert AgentClient(server.server_address).health() == {"ok": True, "digest": None}


def test_client_raises_the_agents_one_line_message(server):
    with pytest.raises(NodeError, match=r"^<request>:3: groups: got 5 bytes$"):
        AgentClient(server.server_address).apply_policy("x: 1\n")
    with pytest.raises(NodeError, match="no such resource: /v1/stats"):
        AgentClient(server.server_address).stats()


def test_second_server_on_a_live_socket_is_refused(server):
    with pytest.raises(NodeError, match="another agent is already running at"):
        UnixHTTPServer(server.server_address, JsonHandler, EchoApp())


def test_client_says_when_no_agent_runs(tmp_path, monkeypatch):
    missing = str(tmp_path / "none.sock")
    with pytest.raises(NodeError, match=f"^agent not running at {missing}$"):
        AgentClient(missing).health()
    monkeypatch.setenv("BAYCTL_AGENT_SOCKET", missing)
    assert AgentClient().socket_path == missing


def test_agent_locations_follow_the_environment(monkeypatch):
    from bayctl.node import agent

    for name in ("BAYCTL_AGENT_SOCKET", "BAYCTL_AGENT_PIN_DIR", "BAYCTL_AGENT_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert (agent.default_socket(), agent.default_pin_dir(), agent.default_state_dir()) == (
        "/run/bayctl/agent.sock", "/sys/fs/bpf/bayctl", "/var/lib/bayctl")
    monkeypatch.setenv("BAYCTL_AGENT_SOCKET", "/run/n1/agent.sock")
    monkeypatch.setenv("BAYCTL_AGENT_PIN_DIR", "/sys/fs/bpf/n1")
    monkeypatch.setenv("BAYCTL_AGENT_STATE_DIR", "/var/lib/n1")
    assert (agent.default_socket(), agent.default_pin_dir(), agent.default_state_dir()) == (
        "/run/n1/agent.sock", "/sys/fs/bpf/n1", "/var/lib/n1")

"""bay.json files written before BayState had typed fields (nodes and login derived by every
reader, step outputs in `extra`) are read into the fields, and written back in the new form."""

import json

import pytest

from bayctl.create.state import BayState, DamagedState, bay_key_path
from bayctl.model import MASTER, SLAVE, Login, Node

# As BayState.save wrote it up to commit aff2ecd (a heat bay, seeded once).
FORMER = {
    "name": "old", "provider": "heat", "status": "READY", "ref": "old/1234",
    "spec": {"name": "old", "provider": "heat", "slaves": 1, "ssh_user": None, "ssh_key": None},
    "nodes": [{"name": "old-master", "role": "master", "public_ip": "203.0.113.5", "private_ip": "10.0.0.4"},
              {"name": "old-slave-0", "role": "slave", "public_ip": None, "private_ip": "10.0.0.5"}],
    "steps": {"ensure-image": "done", "seed-policy": "done"},
    "policy_digest": "ab" * 32, "policy_path": "/p/web-db.yaml", "failed_step": None, "reason": None,
    "provider_status": "CREATE_COMPLETE", "created_at": 1.0, "updated_at": 2.0,
    "extra": {"image_id": "img-1", "template": "tpl-1", "container_subnets": {"old-slave-0": "10.100.5.0/24"},
              "probe_subnets": {"old-slave-0": "10.100.5.128/25"}, "created_keypair": "bayctl-old",
              "seed": [{"node": "old-slave-0", "status": "applied", "reason": ""}]},
}


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYCTL_STATE_DIR", str(tmp_path))
    return tmp_path


def write(state_dir, record):
    (state_dir / record["name"]).mkdir()
    (state_dir / record["name"] / "bay.json").write_text(json.dumps(record))


def test_a_former_bay_json_is_read_into_the_typed_fields(state_dir):
    write(state_dir, FORMER)
    state = BayState.load("old")
    assert state.nodes == [Node("old-master", MASTER, "203.0.113.5", "10.0.0.4"),
                           Node("old-slave-0", SLAVE, None, "10.0.0.5")]
    assert state.master.name == "old-master" and [n.name for n in state.slaves] == ["old-slave-0"]
    # The login the former readers derived: the cloud image's user, the bay's own key.
    assert state.login == Login(user="debian", key=bay_key_path(str(state_dir / "old")))
    assert (state.image_id, state.template_id) == ("img-1", "tpl-1")
    assert state.container_subnets == {"old-slave-0": "10.100.5.0/24"}
    assert state.probe_subnets == {"old-slave-0": "10.100.5.128/25"}
    assert state.last_seed == [{"node": "old-slave-0", "status": "applied", "reason": ""}]
    assert state.extra == {"created_keypair": "bayctl-old"}  # what is not a step output stays


def test_a_former_local_bay_logs_in_as_root_and_the_spec_login_wins(state_dir):
    write(state_dir, dict(FORMER, name="loc", provider="local", ref="loc"))
    assert BayState.load("loc").login.user == "root"
    write(state_dir, dict(FORMER, name="own", spec=dict(FORMER["spec"], ssh_user="ubuntu", ssh_key="/k")))
    assert BayState.load("own").login == Login(user="ubuntu", key="/k")


def test_saved_again_it_is_written_in_the_new_form_and_reads_the_same(state_dir):
    write(state_dir, FORMER)
    state = BayState.load("old")
    state.save()
    saved = json.loads((state_dir / "old" / "bay.json").read_text())
    assert saved["template_id"] == "tpl-1" and "template" not in saved["extra"]
    assert "provider_status" not in saved and "created_at" not in saved  # never read: no longer written
    assert saved["nodes"][0] == FORMER["nodes"][0]  # nodes keep their JSON form
    again = BayState.load("old")
    assert again == state


def test_a_node_record_that_is_not_a_node_is_one_line_naming_the_file(state_dir):
    write(state_dir, dict(FORMER, nodes=[{"name": "x", "colour": "red"}]))
    with pytest.raises(DamagedState) as caught:
        BayState.load("old")
    assert "nodes" in str(caught.value) and "bay.json" in str(caught.value.path)

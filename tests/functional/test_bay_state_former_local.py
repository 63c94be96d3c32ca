"""A local bay whose bay.json was written by bayctl before BayState had typed fields (nodes and
login derived by each reader, step outputs in `extra`, provider_status and created_at) still
lists, verifies and deletes, with nothing left on the machine."""

import json
import os

import pytest
from harness.fixtures_localbay import leftovers
from harness.prereq import require, require_root, require_tools

from bayctl import api
from bayctl.providers import local_nodes

pytestmark = [pytest.mark.root, pytest.mark.sshd]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB_DB = os.path.join(ROOT, "bayctl", "share", "policies", "web-db.yaml")
BAY = "bbt-former"
# Fields of today's bay.json that the former one kept in `extra` (under these keys) or had not.
MOVED_TO_EXTRA = {"image_id": "image_id", "template_id": "template", "container_subnets": "container_subnets",
                  "probe_subnets": "probe_subnets", "last_seed": "seed"}
NOT_WRITTEN_BEFORE = ("ssh_user", "ssh_key")


def as_former_record(record: dict) -> dict:
    """bay.json as BayState.save wrote it up to commit aff2ecd."""
    former = {key: value for key, value in record.items()
              if key not in MOVED_TO_EXTRA and key not in NOT_WRITTEN_BEFORE}
    former["extra"] = dict(record["extra"])
    for field, key in MOVED_TO_EXTRA.items():
        if record.get(field) is not None:
            former["extra"][key] = record[field]
    former.update(provider_status="CREATE_COMPLETE", created_at=record["updated_at"])
    return former


@pytest.fixture(scope="module")
def former_bay(state_root):
    require_root()
    require_tools("ip", "nsenter", "setsid", "ssh-keygen", "sshd")
    require(os.path.exists(local_nodes.SSHD), f"needs {local_nodes.SSHD} (openssh-server)")
    bay = api.create_bay(BAY, provider="local", slaves=1, policy=WEB_DB)
    path = os.path.join(bay.state.directory, "bay.json")
    with open(path) as handle:
        record = json.load(handle)
    with open(path, "w") as handle:
        json.dump(as_former_record(record), handle)
    yield bay
    api.delete_bay(BAY)


def test_the_former_record_is_what_the_former_code_wrote(former_bay):
    with open(os.path.join(former_bay.state.directory, "bay.json")) as handle:
        record = json.load(handle)
    assert not set(MOVED_TO_EXTRA) & set(record) and not set(NOT_WRITTEN_BEFORE) & set(record)
    assert {"probe_subnets", "container_subnets", "seed"} <= set(record["extra"])
    assert all(isinstance(node, dict) for node in record["nodes"])


def test_it_lists_with_its_nodes_and_login(former_bay):
    listed = {bay.name: bay for bay in api.list_bays()}
    bay = listed[BAY]
    assert bay.status == "READY" and [n.name for n in bay.nodes] == ["master", "slave0"]
    assert bay.ssh_user == "root" and bay.ssh_key == os.path.join(bay.state.directory, "id_ed25519")
    assert bay.to_dict()["slaves"] == [f"slave0 {bay.slaves[0].private_ip}"]


def test_it_verifies_with_the_probe_subnets_it_recorded(former_bay):
    report = api.get_bay(BAY).verify()
    assert report.pairs and not report.mismatches


def test_it_deletes_leaving_nothing(former_bay, state_root):
    assert api.delete_bay(BAY) is True
    assert leftovers(BAY, state_root) == []

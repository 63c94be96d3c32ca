"""POST /v1/cni as the agent answers it (node/cni_service.py): a call runs in the agent only
when the plugin shares its network and mount namespaces; the answer is the plugin's own."""

import json

import pytest

from bayctl.node.cni_forward import namespace_ids
from bayctl.node.cni_service import run_call
from bayctl.node.unixhttp import ApiError

CONFIG = {"cniVersion": "1.0.0", "name": "web", "type": "bayctl-cni", "linkMode": "sideways",
          "ipam": {"type": "bayctl", "subnet": "10.221.0.0/24"}}
ADD = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/x"}


def call(environ, stdin, namespaces=None):
    body = {"environ": environ, "stdin": stdin, "namespaces": namespaces or namespace_ids()}
    return run_call(json.dumps(body).encode())


def test_a_call_from_another_namespace_is_refused_so_the_plugin_runs_it_itself():
    for other in ({**namespace_ids(), "net": "0:1"}, {**namespace_ids(), "mnt": "0:1"}, {}):
        with pytest.raises(ApiError) as refused:
            call(ADD, json.dumps(CONFIG), namespaces=other or {"net": None})
        assert refused.value.status == 409


@pytest.mark.parametrize("body", [b"not json", b"[]", json.dumps({"environ": {}, "stdin": ""}).encode(),
                                  json.dumps({"environ": {"A": 1}, "stdin": "", "namespaces": {}}).encode(),
                                  json.dumps({"environ": {}, "stdin": 3, "namespaces": {}}).encode()])
def test_a_malformed_call_is_a_400(body):
    with pytest.raises(ApiError) as refused:
        run_call(body)
    assert refused.value.status == 400


def test_the_answer_is_what_the_plugin_would_have_printed_and_returned():
    answer = call(ADD, json.dumps(CONFIG))
    assert answer["status"] == 1 and answer["stderr"] == ""
    assert answer["document"]["code"] == 7 and "linkMode 'sideways'" in answer["document"]["msg"]
    answer = call({"CNI_COMMAND": "VERSION"}, "")
    assert answer["status"] == 0 and "1.1.0" in answer["document"]["supportedVersions"]

"""The CNI skeleton (node/cni_skel.py) and bayctl-cni's error classification: by exception
type, never by the words of the message."""

import json

import pytest

from bayctl.errors import NodeError
from bayctl.node import cni
from bayctl.node.attach import GroupRejected
from bayctl.node.client import AgentError
from bayctl.node.cni_skel import Verbs, run

CONFIG = json.dumps({"cniVersion": "1.0.0", "name": "web", "type": "bayctl-cni",
                     "ipam": {"type": "bayctl", "subnet": "10.221.0.0/24"}})
ENV = {"CNI_COMMAND": "STATUS"}


def failing(error):
    def verb(inv):
        raise error
    return Verbs(add=verb, delete=verb, check=verb, status=verb, gc=verb)


@pytest.mark.parametrize("error, code, msg, details", [
    # The agent's own refusal names no "agent": it is still the agent's failure.
    (AgentError("bad group tag 70000: expected 1-65535"), cni.AGENT_FAILURE,
     "bad group tag 70000: expected 1-65535", ""),
    (NodeError("interface bayab12cd34 vanished before it was moved"), cni.LINK_FAILURE,
     "interface bayab12cd34 vanished before it was moved", ""),
    # ... and a link failure whose words mention an agent is still a link failure.
    (NodeError("creating the agent's veth failed"), cni.LINK_FAILURE, "creating the agent's veth failed", ""),
    (GroupRejected("group 'nosuch' is not in the node's policy", "groups: db, web"), 7,
     "group 'nosuch' is not in the node's policy", "groups: db, web"),
    (FileNotFoundError(2, "No such file or directory", "/var/lib/x"), 5, "No such file or directory",
     "/var/lib/x"),
    (ZeroDivisionError("division by zero"), 199, "internal error: ZeroDivisionError: division by zero", ""),
])
def test_failures_are_classified_by_type(error, code, msg, details):
    document, status = run(ENV, CONFIG, failing(error), invocation=cni.Invocation,
                           error_codes=cni.ERROR_CODES)
    assert status == 1
    assert document == {"cniVersion": "1.0.0", "code": code, "msg": msg, "details": details}


def test_version_needs_no_config_and_lists_every_supported_version():
    document, status = run({"CNI_COMMAND": "VERSION"}, "", failing(AssertionError()))
    assert status == 0 and document["supportedVersions"][-1] == "1.1.0"


def test_the_plugin_answers_through_the_skeleton():
    document, status = cni.run({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
                                "CNI_NETNS": "/run/netns/x"}, CONFIG.replace('"name": "web", ', ""))
    assert status == 1 and document["code"] == 7 and "'name'" in document["msg"]

"""verify's probe endpoints take the link mode of the node's own Mesos network (issue 13)."""

import json

import pytest

from bayctl.errors import NodeError
from bayctl.node import hostgw, links
from bayctl.verify import node


def _node(tmp_path, config=None, raw=None):
    cni_dir = tmp_path / "cni"
    cni_dir.mkdir()
    env = tmp_path / "node.env"
    env.write_text(f"# the image's\nBAYCTL_CNI_CONFIG_DIR={cni_dir}\nBAYCTL_CNI_NETWORK=bayctl\n")
    if config is not None or raw is not None:
        (cni_dir / hostgw.CNI_CONFIG_NAME).write_text(raw if raw is not None else json.dumps(config))
    return str(env)


def test_a_node_without_the_images_statement_gets_veth(tmp_path):  # a local bay's namespaces
    assert node.configured_link(str(tmp_path / "absent.env")) == (links.VETH, None)


def test_a_node_whose_network_is_not_written_yet_gets_veth(tmp_path):
    assert node.configured_link(_node(tmp_path)) == (links.VETH, None)


def test_the_mode_and_parent_of_the_nodes_own_network_are_used(tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(links, "ipvlan_supported", lambda parent: asked.append(parent) or True)
    config = hostgw.cni_config("10.100.3.0/24", link_mode="ipvlan-l3")
    config["parent"] = "ens3"
    assert node.configured_link(_node(tmp_path, config)) == ("ipvlan-l3", "ens3")
    assert asked == ["ens3"]


def test_auto_resolves_as_the_plugin_resolves_it(tmp_path, monkeypatch):
    monkeypatch.setattr(links, "default_parent", lambda: "eth0")
    for supported, mode in ((True, "ipvlan-l2"), (False, links.VETH)):
        monkeypatch.setattr(links, "ipvlan_supported", lambda parent, s=supported: s)
        path = tmp_path / mode
        path.mkdir()
        assert node.configured_link(_node(path, hostgw.cni_config("10.100.3.0/24"))) == (mode, None)


def test_a_broken_config_names_its_file(tmp_path):
    with pytest.raises(NodeError, match=r"10-bayctl\.conf: not JSON"):
        node.configured_link(_node(tmp_path, raw="{"))


def test_the_plugin_is_the_one_the_mesos_agent_finds(tmp_path):
    """On a cloud node bayctl-cni lives in node.env's plugins dir, not on an SSH session's PATH."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    plugin = plugins / "bayctl-cni"
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    env = tmp_path / "node.env"
    env.write_text(f"BAYCTL_CNI_PLUGINS_DIR={plugins}\n")
    assert node.cni_plugin(str(env)) == str(plugin)

"""The one sshd-node writer (local bay nodes and the tests' sshd nodes): real sshd accepts it.

`sshd -t` parses the config and loads the host keys, so a config the writer renders wrongly,
or a key generate_host_key makes in a form sshd refuses, fails here in well under a second.
"""

import subprocess

from harness.prereq import require_tools

from bayctl.errors import NodeError
from bayctl.providers.local_nodes import generate_host_key, render_sshd_config


def _render(tmp_path, **overrides):
    keys = []
    for kind in ("ed25519", "ecdsa"):
        path = str(tmp_path / f"ssh_host_{kind}_key")
        generate_host_key(path, f"unit-{kind}", kind)
        keys.append(path)
    args = dict(listen="127.0.0.1:22", host_keys=keys, authorized_keys=str(tmp_path / "authorized_keys"),
                forwarding=False, agent_socket="/run/bayctl/x/agent.sock", home=str(tmp_path / "home"))
    args.update(overrides)
    config = tmp_path / "sshd_config"
    config.write_text(render_sshd_config(**args))
    return config, keys


def _effective(config):
    """sshd's own reading of the file (-T: every option after parsing), as {option: value}."""
    argv = ["/usr/sbin/sshd", "-T", "-f", str(config), "-C", "user=root,host=x,addr=127.0.0.1"]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    options = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" ")
        options.setdefault(name, []).append(value)
    return options


def test_sshd_reads_the_rendered_config_as_key_only_with_every_host_key_and_the_node_env(tmp_path):
    require_tools("sshd", "ssh-keygen")
    config, keys = _render(tmp_path)
    options = _effective(config)
    assert options["passwordauthentication"] == ["no"]
    assert options["kbdinteractiveauthentication"] == ["no"]
    assert options["pubkeyauthentication"] == ["yes"]
    assert options["allowtcpforwarding"] == ["no"]
    assert sorted(options["hostkey"]) == sorted(keys)
    setenv = " ".join(options["setenv"])
    assert "BAYCTL_AGENT_SOCKET=/run/bayctl/x/agent.sock" in setenv and f"HOME={tmp_path}/home" in setenv


def test_forwarding_and_max_startups_are_the_callers(tmp_path):
    require_tools("sshd", "ssh-keygen")
    config, _ = _render(tmp_path, forwarding=True, max_startups="200:30:400")
    options = _effective(config)
    assert options["allowtcpforwarding"] == ["yes"]
    assert options["maxstartups"] == ["200:30:400"]


def test_a_key_type_ssh_keygen_refuses_is_one_node_error(tmp_path):
    require_tools("ssh-keygen")
    try:
        generate_host_key(str(tmp_path / "k"), "unit-bad", "no-such-type")
    except NodeError as err:
        assert str(err).startswith("ssh-keygen for unit-bad:") and "\n" not in str(err)
    else:
        raise AssertionError("ssh-keygen accepted an unknown key type")

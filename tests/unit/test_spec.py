"""BaySpec: bay.yaml keys and flags are one list; every error names file, line and field."""

import os
import subprocess
import sys
import textwrap

import pytest

from bayctl.errors import PolicyError, SpecError
from bayctl.spec import FIELDS, FIELDS_BY_KEY, load_spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEB_DB = os.path.join(ROOT, "bayctl", "share", "policies", "web-db.yaml")


def write(tmp_path, text, name="bay.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_every_file_key_is_a_flag_of_create_and_back():
    from bayctl.cli.bay import CreateMesosBay

    parser = CreateMesosBay(app=None, app_args=None).get_parser("bayctl create mesosbay")
    flag_of = {action.dest: action.option_strings for action in parser._actions}
    for field in FIELDS:
        if field.key == "cloud":  # the OpenStack option: --cloud is another spelling of --os-cloud
            assert parser._option_string_actions[field.flag].dest == "os_cloud"
            continue
        assert flag_of[field.key] == [field.flag], field.key
        assert field.flag == "--" + field.key.replace("_", "-")


def test_file_values_then_flags_win(tmp_path):
    path = write(tmp_path, f"""\
        provider: local
        slaves: 3
        policy: {WEB_DB}
        labels:
          zone: a
    """)
    spec = load_spec(path, name="demo", overrides={"slaves": "1", "labels": ["zone=b", "rack=r1"]})
    assert (spec.provider, spec.slaves, spec.policy) == ("local", 1, WEB_DB)
    assert spec.labels == {"zone": "b", "rack": "r1"}
    assert spec.source == path


def test_defaults_without_a_file():
    spec = load_spec(None, name="demo")
    assert (spec.provider, spec.slaves, spec.policy, spec.labels) == ("auto", 2, None, {})


def test_relative_paths_in_a_file_are_relative_to_the_file(tmp_path):
    (tmp_path / "pol").mkdir()
    (tmp_path / "pol" / "p.yaml").write_text(open(WEB_DB).read())
    path = write(tmp_path, "policy: pol/p.yaml\n")
    assert load_spec(path, name="demo").policy == str(tmp_path / "pol" / "p.yaml")


@pytest.mark.parametrize("text, line, field, words", [
    ("provider: local\nslave: 2\n", 2, "slave", "unknown key"),
    ("provider: local\nslaves: many\n", 2, "slaves", "not a whole number"),
    ("slaves: 0\n", 1, "slaves", "out of range"),
    ("provider: openstack\n", 1, "provider", "not one of"),
    ("slaves: 2\nslaves: 3\n", 2, "slaves", "given twice"),
    ("labels: [a, b]\n", 1, "labels", "mapping"),
    ("flavor:\n", 1, "flavor", "single value"),
    ("provider: local\nslaves: [2\n", 3, None, "not valid YAML"),
])
def test_bad_file_names_file_line_and_field(tmp_path, text, line, field, words):
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as caught:
        load_spec(path, name="demo")
    err = caught.value
    assert (err.path, err.line) == (path, line)
    assert err.field == field
    assert words in str(err)
    assert str(err).startswith(f"{path}:{line}: ")
    assert "\n" not in str(err)


def test_bad_flag_names_the_flag():
    with pytest.raises(SpecError) as caught:
        load_spec(None, name="demo", overrides={"slaves": "-1"})
    assert str(caught.value).startswith("--slaves: ")
    with pytest.raises(SpecError, match="--labels: 'zone': expected KEY=VALUE"):
        load_spec(None, name="demo", overrides={"labels": ["zone"]})


def test_cloud_provider_needs_its_cloud_fields(tmp_path):
    path = write(tmp_path, "provider: heat\nimage: bayctl-mesos\nflavor: m1.small\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path, name="demo")
    assert caught.value.field == "external_network"
    assert "required for provider heat" in str(caught.value)


def test_cloud_provider_without_keypair_is_valid_bayctl_makes_one(tmp_path):
    # No keypair: `create` uploads the bay's own key as bayctl-NAME (bayctl.create.keypair).
    path = write(tmp_path, "provider: heat\nimage: i\nflavor: f\nexternal_network: public\n")
    assert load_spec(path, name="demo").keypair is None


def test_local_bay_size_is_bounded():
    from bayctl.spec import MAX_LOCAL_SLAVES

    # Issue 16 item 4 verifies a 64-slave local bay: the cap allows it, and nothing beyond.
    assert load_spec(None, name="demo", overrides={"provider": "local", "slaves": "64"}).slaves == 64
    with pytest.raises(SpecError, match="slaves") as caught:
        load_spec(None, name="demo", overrides={"provider": "local", "slaves": str(MAX_LOCAL_SLAVES + 1)})
    assert str(MAX_LOCAL_SLAVES + 1) in str(caught.value) and len(str(caught.value).splitlines()) == 1


def test_bad_policy_is_the_policy_files_error(tmp_path):
    bad = tmp_path / "bad-policy.yaml"
    bad.write_text("apiVersion: bayctl/v1\nkind: GroupPolicy\ngroups:\n  web: 0\n")
    with pytest.raises(PolicyError) as caught:
        load_spec(None, name="demo", overrides={"policy": str(bad)})
    assert caught.value.path == str(bad)
    assert caught.value.line == 4


@pytest.mark.parametrize("name", ["Demo", "1bay", "a" * 41, "with space", "x_y", ""])
def test_bay_names_that_would_break_a_stack_or_a_namespace_are_refused(name):
    with pytest.raises(SpecError, match="not a bay name"):
        load_spec(None, name=name)


def test_spec_round_trips_through_the_bay_state():
    from bayctl.spec import BaySpec

    spec = load_spec(None, name="demo", overrides={"provider": "local", "labels": ["a=b"], "policy": WEB_DB})
    assert BaySpec.from_dict(spec.to_dict()) == spec


def test_every_field_has_help_a_newcomer_can_act_on():
    for field in FIELDS:
        assert len(field.help) > 15, field.key
    assert set(FIELDS_BY_KEY) >= {"provider", "slaves", "flavor", "master_flavor", "image", "keypair",
                                  "external_network", "policy", "ssh_user", "ssh_key", "labels"}


def test_cli_bad_spec_is_one_line_exit_1_no_traceback(tmp_path):
    path = write(tmp_path, "provider: local\nslaves: 2\nflavour: m1.small\n")
    env = dict(os.environ, BAYCTL_STATE_DIR=str(tmp_path / "state"))
    argv = [sys.executable, "-m", "bayctl.cli.main", "create", "mesosbay", "demo", "--spec", path]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [f"{path}:3: flavour: unknown key (known: {', '.join(FIELDS_BY_KEY)})"]
    assert "Traceback" not in done.stderr + done.stdout
    # Validation comes before any side effect: no state was written for the bay.
    assert not (tmp_path / "state" / "demo").exists()

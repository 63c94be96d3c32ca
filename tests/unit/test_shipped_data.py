"""Shipped data (bayctl/share) is found through the package, and a policy argument is a file
or a shipped example's name, a file of that name winning."""

import os

import pytest

import bayctl
from bayctl import share
from bayctl.errors import PolicyError
from bayctl.spec import load_spec

PACKAGE = os.path.dirname(os.path.abspath(bayctl.__file__))


def test_shipped_folders_are_inside_the_package():
    for folder in (share.heat_templates_dir(), share.elements_dir(), share.policies_dir()):
        assert folder.startswith(os.path.join(PACKAGE, "share") + os.sep) and os.path.isdir(folder)
    assert os.path.isfile(os.path.join(share.heat_templates_dir(), "mesosbay.yaml"))
    assert os.path.isdir(os.path.join(share.elements_dir(), "bayctl-node"))


def test_the_users_of_shipped_data_find_it_in_the_package(monkeypatch):
    from bayctl import demo, pytest_plugin
    from bayctl.image import elements
    from bayctl.providers import heat

    monkeypatch.delenv("BAYCTL_HEAT_TEMPLATES", raising=False)
    assert heat.templates_dir() == share.heat_templates_dir()
    assert elements.BAYCTL_ELEMENTS_DIR == share.elements_dir()
    assert pytest_plugin.DEFAULT_POLICY == os.path.join(share.policies_dir(), "web-db.yaml")
    assert all(os.path.isfile(path) for path in demo.default_policies())


def test_examples_are_named_by_their_files():
    names = {os.path.splitext(n)[0] for n in os.listdir(share.policies_dir()) if n.endswith(".yaml")}
    assert set(share.example_policies()) == names and "web-db" in names
    for path in share.example_policies().values():
        assert share.example_description(path)  # every example says what it shows


def test_a_name_is_a_shipped_example_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert share.policy_path("web-db") == os.path.join(share.policies_dir(), "web-db.yaml")


def test_a_file_of_that_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "web-db").write_text("apiVersion: bayctl/v1\n")
    assert share.policy_path("web-db") == str(tmp_path / "web-db")


def test_paths_are_absolute_and_unknown_words_name_the_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text("apiVersion: bayctl/v1\n")
    assert share.policy_path("mine.yaml") == str(tmp_path / "mine.yaml")
    assert share.policy_path("gone.yaml") == str(tmp_path / "gone.yaml")  # the loader says "cannot read"
    assert share.policy_path("-") == "-"
    with pytest.raises(PolicyError) as info:
        share.policy_path("web-dbx")
    assert "web-db" in str(info.value) and "bayctl policy examples" in str(info.value)


def test_spec_policy_takes_a_name_on_the_command_line_and_in_bay_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    example = os.path.join(share.policies_dir(), "stars.yaml")
    assert load_spec(name="b1", overrides={"policy": "stars"}).policy == example
    bay_yaml = tmp_path / "conf" / "bay.yaml"
    bay_yaml.parent.mkdir()
    bay_yaml.write_text("policy: stars\n")
    assert load_spec(str(bay_yaml), name="b1").policy == example
    (bay_yaml.parent / "stars").write_text(open(example).read())  # next to bay.yaml: the file wins
    assert load_spec(str(bay_yaml), name="b1").policy == str(bay_yaml.parent / "stars")

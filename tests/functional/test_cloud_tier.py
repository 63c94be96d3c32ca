"""The real keystone + glance + heat tier answers, and bayctl connects to it the usual ways."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cloud


def test_tier_catalog_names_the_real_services_and_the_emulated_ones(cloud_conn):
    types = {s.type for s in cloud_conn.identity.services()}
    assert {"identity", "image", "orchestration", "compute", "network", "container-infra"} <= types


def test_real_heat_lists_resource_types_used_by_the_test_environment(cloud_conn):
    from bayctl.cloud.heat_client import heat

    names = {t.resource_type for t in heat(cloud_conn).resource_types.list()}
    assert {"OS::Heat::RandomString", "OS::Heat::TestResource", "OS::Heat::ResourceGroup",
            "OS::Heat::WaitCondition"} <= names


def test_connect_from_clouds_yaml_with_os_cloud(cloud_tier, clouds_yaml, monkeypatch):
    from bayctl.cloud.connection import connect

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", clouds_yaml)
    conn = connect(cloud="bayctl-test")
    assert conn.current_project.name == "admin"
    assert conn.session.verify is True  # TLS verification stays on unless asked otherwise
    conn.close()


def test_connect_from_os_environment(cloud_tier, monkeypatch):
    from bayctl.cloud.connection import connect

    auth = cloud_tier.auth
    for key, value in {"OS_AUTH_URL": auth["auth_url"], "OS_USERNAME": "demo",
                       "OS_PASSWORD": cloud_tier.demo_password, "OS_PROJECT_NAME": "demo",
                       "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
                       "OS_REGION_NAME": auth["region_name"]}.items():
        monkeypatch.setenv(key, value)
    conn = connect()
    assert conn.current_project.name == "demo"
    conn.close()


def test_connect_from_argparse_options(cloud_tier):
    import argparse

    from bayctl.cloud.connection import add_cloud_arguments, connect

    auth = cloud_tier.auth
    argv = ["--os-auth-url", auth["auth_url"], "--os-username", "admin", "--os-password", auth["password"],
            "--os-project-name", "admin", "--os-user-domain-name", "Default",
            "--os-project-domain-name", "Default", "--os-region-name", auth["region_name"]]
    parser = add_cloud_arguments(argparse.ArgumentParser(), argv)
    conn = connect(options=parser.parse_args(argv))
    assert conn.current_project.name == "admin"
    conn.close()


def test_refused_password_is_one_clear_line_without_the_password(cloud_tier):
    from bayctl.cloud.connection import connect
    from bayctl.errors import CloudError

    wrong = "not-the-password-" + "x" * 8
    with pytest.raises(CloudError) as info:
        connect(**dict(cloud_tier.auth, password=wrong))
    assert "refused" in str(info.value)
    assert wrong not in str(info.value)
    assert "\n" not in str(info.value)


def _bayctl(args, env):
    return subprocess.run([sys.executable, "-m", "bayctl.cli.main", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_debug_output_never_shows_the_password_or_the_token(cloud_tier, clouds_yaml):
    env = {"OS_CLIENT_CONFIG_FILE": clouds_yaml}
    res = _bayctl(["--debug", "-v", "image", "list", "--os-cloud", "bayctl-test"], env)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert "REQ: curl" in out or "GET call to" in out  # the HTTP debug log really ran
    assert cloud_tier.auth["password"] not in out

    # The same through a pre-issued token: the token itself must not show either.
    import openstack

    token = openstack.connect(**cloud_tier.auth).session.get_token()
    auth = cloud_tier.auth
    res = _bayctl(["--debug", "-v", "image", "list", "--os-auth-type", "token",
                   "--os-auth-url", auth["auth_url"], "--os-token", token, "--os-project-name", "admin",
                   "--os-project-domain-name", "Default",
                   "--os-region-name", auth["region_name"]], {})
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-2000:]
    assert "GET call to" in out or "REQ: curl" in out
    assert token not in out

"""`--os-*` options reach the real cloud tier through the commands that did not take them
before (create mesosbay, and any command with the options before it), as the `openstack`
client takes them. One cheap call each: pre-flight answers from the real Glance."""

import os
import shutil
import subprocess

import pytest
from harness.prereq import require_tools

pytestmark = pytest.mark.cloud

CLOUD_ARGS = ("--provider", "heat", "--image", "bco-no-such-image", "--flavor", "m1.small",
              "--keypair", "bco-no-such-key", "--external-network", "public")


def bayctl(*args, env):
    require_tools("bayctl")
    return subprocess.run([shutil.which("bayctl"), *args], capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.fixture
def plain_env(tmp_path):
    """No OS_* at all and an empty clouds.yaml: only the command line says where the cloud is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = os.devnull
    env["BAYCTL_STATE_DIR"] = str(tmp_path / "bays")
    return env


def os_options(tier):
    auth = tier.auth
    return ["--os-auth-url", auth["auth_url"], "--os-username", auth["username"],
            "--os-password", auth["password"], "--os-project-name", auth["project_name"],
            "--os-user-domain-name", "Default", "--os-project-domain-name", "Default",
            "--os-region-name", auth["region_name"]]


def assert_glance_answered(result):
    """Authenticated, then the tier's real Glance said the image is not there (the create's
    image step), which no unconfigured or unreachable cloud gets to."""
    assert "Checking the node image: failed" in result.stderr, result.stderr
    assert "bco-no-such-image" in result.stderr.splitlines()[-1]
    for earlier in ("cloud configuration", "cannot reach", "refused", "Traceback"):
        assert earlier not in result.stderr


@pytest.mark.parametrize("where", ["after", "before"])
def test_create_mesosbay_reaches_the_cloud_named_by_os_options(cloud_tier, plain_env, where):
    options = os_options(cloud_tier)
    argv = (["create", "mesosbay", "bco-one", *CLOUD_ARGS, *options] if where == "after"
            else [*options, "create", "mesosbay", "bco-one", *CLOUD_ARGS])
    result = bayctl(*argv, env=plain_env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert_glance_answered(result)
    assert cloud_tier.auth["password"] not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    listed = bayctl("list", "-f", "value", env=plain_env)
    assert listed.returncode == 0 and "bco-one" not in listed.stdout  # nothing half-made is left


def test_os_cloud_from_clouds_yaml_before_the_command(cloud_tier, clouds_yaml, plain_env):
    env = dict(plain_env, OS_CLIENT_CONFIG_FILE=clouds_yaml)
    result = bayctl("--os-cloud", "bayctl-test", "create", "mesosbay", "bco-two", *CLOUD_ARGS, env=env)
    assert result.returncode == 1
    assert_glance_answered(result)
    spelled = bayctl("create", "mesosbay", "bco-two", *CLOUD_ARGS, "--cloud", "bayctl-test", env=env)
    assert spelled.returncode == 1
    assert_glance_answered(spelled)

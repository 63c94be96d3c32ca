"""The real keystone + glance + heat tier answers, and bayctl connects to it the usual ways."""

import os
import subprocess
import sys

import pytest
from harness.prereq import require

pytestmark = pytest.mark.cloud


def test_tier_catalog_names_the_real_services_and_the_emulated_ones(cloud_conn):
    types = {s.type for s in cloud_conn.identity.services()}
    assert {"identity", "image", "orchestration", "cloudformation", "compute", "network",
            "container-infra"} <= types


def _ec2_signed(url, access, secret, params):
    """`params` with an AWS signature version 2 (HmacSHA256) over GET `url`, as Heat signs its
    CFN signal URLs and os-collect-config its metadata polls."""
    import base64
    import hashlib
    import hmac
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    params = dict(params, AWSAccessKeyId=access, SignatureVersion="2", SignatureMethod="HmacSHA256")
    query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(str(v), safe='-_.~')}"
                     for k, v in sorted(params.items()))
    digest = hmac.new(secret.encode(), f"GET\n{parts.netloc}\n{parts.path}\n{query}".encode(),
                      hashlib.sha256).digest()
    return dict(params, Signature=base64.b64encode(digest).decode())


def test_heat_api_cfn_serves_a_stack_user_whose_ec2_signature_keystone_checks(cloud_tier, cloud_conn):
    """heat-api-cfn (the metadata and signal API of servers on POLL_SERVER_CFN, in the catalog as
    `cloudformation`): a request signed with a stack user's EC2 key passes keystone's
    /v3/ec2tokens (which answers heat's service user only) and Heat's DescribeStackResource
    policy, even signed 20 minutes ago (a slow guest's deployment signal), and reaches the engine
    (no such stack); a wrong signature is refused."""
    import datetime
    import secrets

    import requests

    [service] = [s for s in cloud_conn.identity.services() if s.type == "cloudformation"]
    [endpoint] = [e for e in cloud_conn.identity.endpoints(service_id=service.id) if e.interface == "public"]
    url = endpoint.url.rstrip("/") + "/"
    ident = cloud_conn.identity
    project = ident.find_project("demo", domain_id="default")
    user = ident.create_user(name=f"cfn-{secrets.token_hex(4)}", password=secrets.token_urlsafe(12),
                             domain_id="default")
    try:
        ident.assign_project_role_to_user(project, user, ident.find_role("heat_stack_user"))
        access, secret = secrets.token_hex(16), secrets.token_hex(16)
        ident.create_credential(type="ec2", user_id=user.id, project_id=project.id,
                                blob=f'{{"access": "{access}", "secret": "{secret}"}}')
        signed_at = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)
        params = {"Action": "DescribeStackResource", "StackName": "no-such-stack",
                  "LogicalResourceId": "server", "Timestamp": signed_at.strftime("%Y-%m-%dT%H:%M:%SZ")}
        answer = requests.get(url, params=_ec2_signed(url, access, secret, params), timeout=60)
        assert answer.status_code == 400 and "no-such-stack" in answer.text, \
            (answer.status_code, answer.text[:400])
        wrong = requests.get(url, params=_ec2_signed(url, access, "not-the-secret", params), timeout=60)
        assert wrong.status_code == 403 and "not allowed" not in wrong.text, \
            (wrong.status_code, wrong.text[:400])
    finally:
        ident.delete_user(user, ignore_missing=True)


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


# ---- messaging: the tier's private RabbitMQ between heat-api and heat-engine ----------------

def _require_broker(tier):
    from harness.cloudtier import rabbitmq

    require(rabbitmq.installed(), "needs Debian's rabbitmq-server (tools/setup.d/50-cloud.sh installs it)")
    require(getattr(tier, "broker", None) is not None,
            "the tier runs heat over fake:// (BAYCTL_CLOUD_MESSAGING=fake) or is a reused one")


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def test_heat_api_and_engine_are_separate_processes_over_the_tiers_rabbitmq(cloud_tier, cloud_conn):
    from bayctl.cloud.heat_client import heat

    _require_broker(cloud_tier)
    api, engine = cloud_tier.procs["heat"], cloud_tier.procs["heat-engine"]
    assert api.pid != engine.pid and _process_alive(api.pid) and _process_alive(engine.pid)
    url = cloud_tier.transport_url
    assert url.startswith("rabbit://") and f"@127.0.0.1:{cloud_tier.broker.amqp_port}/" in url
    # An RPC round trip API -> engine -> API (listing resource types is answered by the engine).
    assert "OS::Heat::RandomString" in {t.resource_type for t in heat(cloud_conn).resource_types.list()}
    # Both heat services hold AMQP connections to the tier's broker port (the engine's from its
    # worker process, so compare process groups: each service was started in its own).
    import re

    peers = subprocess.run(["ss", "-Htnp", "state", "established", "dst",
                            f"127.0.0.1:{cloud_tier.broker.amqp_port}"],
                           capture_output=True, text=True, check=True).stdout
    groups = {_pgid(int(pid)) for pid in re.findall(r"pid=(\d+),", peers)}
    assert {api.pid, engine.pid} <= groups, peers


def test_broker_password_is_in_no_log_of_the_tier(cloud_tier):
    _require_broker(cloud_tier)
    password = cloud_tier.transport_url.split(":", 2)[2].split("@", 1)[0]
    assert len(password) >= 24
    for root, _dirs, files in os.walk(cloud_tier.workdir):
        for name in files:
            if name.endswith(".log"):
                with open(os.path.join(root, name), errors="replace") as f:
                    assert password not in f.read(), os.path.join(root, name)


def test_a_private_broker_binds_loopback_on_its_own_ports_and_stop_leaves_no_process(cloud_tier, tmp_path):
    """A second broker beside the tier's (other ports from the same base): both run at once,
    and stop() ends beam, its helpers and the private epmd."""
    import socket

    from harness.cloudtier import rabbitmq
    from harness.cloudtier.tier import PORTS

    _require_broker(cloud_tier)
    base = PORTS["rabbitmq"] + 10
    broker = rabbitmq.Broker(str(tmp_path), base, base + 1, base + 2)
    try:
        broker.spawn()
        broker.wait_ready()
        pgids = {p.pid for p in broker.procs.values()}
        listening = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, check=True).stdout
        for port in (base, base + 1, base + 2):
            bound = [local for local in (line.split()[3] for line in listening.splitlines())
                     if local.endswith(f":{port}")]
            assert bound and all(addr.startswith(("127.0.0.1:", "[::1]:")) for addr in bound), (port, bound)
    finally:
        broker.stop()
    left = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
            if _pgid(pid) in pgids]
    assert left == []
    for port in (base, base + 1, base + 2):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0
    with open(os.path.join(broker.dir, "rabbitmq.conf")) as f:
        assert oct(os.fstat(f.fileno()).st_mode & 0o777) == "0o600"


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None

"""REAL Magnum (magnum-api + magnum-conductor) beside the cloud tier, on 127.0.0.1.

Which Magnum release, and why that one, is in magnum_venv.py. It runs from its own Python 3.8
virtualenv against the tier's REAL keystone, glance and heat, with its database in the tier's
MariaDB and its RPC over the tier's RabbitMQ (`transport_url`); a tier without a broker gets
both services in one process over fake:// instead (magnum_serve.py).
Nova and Neutron, which Magnum's API asks about flavors, keypairs and the external network,
are the tier's emulators; the stack its conductor builds from Magnum's own mesos templates
runs in the real Heat, where the tier's global environment (magnum_heat_env.py) stands in
for the servers, ports and networks by resource name.

Magnum gets its own port and its own catalog entry is not needed: the tests reach it with
openstacksdk's `container_infra_endpoint_override`, so the Magnum emulator keeps the
catalog's container-infra endpoint for every other test.

    magnum = MagnumTier(tier, workdir, transport_url); magnum.start(); ...; magnum.stop()
"""

import os
import secrets
import signal
import subprocess
import time

from harness.cloudtier import magnum_venv
from harness.cloudtier.tier import HOST, PORTS, REGION, TierError, _require_free_port, log_tail, wait_http

MAGNUM_PORT = PORTS["keystone"] + 17
SERVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "magnum_serve.py")
TRUSTEE_DOMAIN = "magnum"

_MANAGE = "import sys; sys.argv[0]='magnum-db-manage'; from magnum.cmd.db_manage import main; main()"
_API = "import sys; sys.argv[0]='magnum-api'; from magnum.cmd.api import main; main()"
_CONDUCTOR = "import sys; sys.argv[0]='magnum-conductor'; from magnum.cmd.conductor import main; main()"


class MagnumTier:
    def __init__(self, tier, workdir, transport_url, db_socket):
        """`transport_url`: the tier's broker; None or fake:// runs api and conductor in one
        process over the in-process fake:// (magnum_serve.py), as the tier's heat does."""
        self.tier = tier
        self.workdir = workdir
        self.single_process = not transport_url or transport_url.startswith("fake:")
        self.transport_url = "fake://" if self.single_process else transport_url
        self.db_socket = db_socket
        self.password = secrets.token_urlsafe(18)
        self.python = magnum_venv.python()
        self.procs = {}
        self.timings = {}

    @property
    def endpoint(self):
        return f"http://{HOST}:{MAGNUM_PORT}/v1"

    def _path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def log_tail(self, name, chars=4000):
        return log_tail(self._path(f"{name}.log"), chars)

    def _run(self, code, *args):
        res = subprocess.run([self.python, "-c", code, *args], capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise TierError(f"{code.split(';')[1].strip()} {' '.join(args)} failed:\n{res.stderr[-3000:]}")
        return res.stdout

    def _spawn(self, name, code):
        """One of Magnum's services (code: its `python -c` entry), or both in one (code None)."""
        argv = [self.python, "-c", code, "--config-file", self._path("magnum.conf")] if code else \
            [self.python, SERVE, self._path("magnum.conf")]
        log = open(self._path(f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        return self.procs[name]

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self):
        t0 = time.monotonic()
        os.makedirs(self.workdir, exist_ok=True)
        # A left-over magnum-api on the port would answer the readiness probe for the new one.
        _require_free_port("magnum-api", MAGNUM_PORT)
        self._create_database()
        self._bootstrap_identity()
        self._write_config()
        self._run(_MANAGE, "--config-file", self._path("magnum.conf"), "upgrade")
        self.timings["db_upgrade"] = round(time.monotonic() - t0, 2)
        if self.single_process:
            api = conductor = self._spawn("magnum", None)
        else:
            conductor = self._spawn("magnum-conductor", _CONDUCTOR)
            api = self._spawn("magnum-api", _API)
        wait_http(MAGNUM_PORT, "/", proc=api, what="magnum-api")
        self._wait_conductor(conductor)
        self.timings["total"] = round(time.monotonic() - t0, 2)
        return self

    def _wait_conductor(self, proc, timeout=90):
        """The conductor is up once it has registered its service record (magnum's heartbeat)."""
        deadline = time.monotonic() + timeout
        name = [n for n, p in self.procs.items() if p is proc][0]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise TierError(f"{name} exited:\n" + self.log_tail(name))
            if "magnum-conductor" in self._sql("SELECT `binary` FROM magnum_service"):
                return
            time.sleep(0.5)
        raise TierError(f"{name}: the conductor did not register:\n" + self.log_tail(name))

    def _sql(self, query):
        return self._run("import pymysql,sys; c=pymysql.connect(unix_socket=sys.argv[1], user='root', "
                         "database='magnum'); k=c.cursor(); k.execute(sys.argv[2]); c.commit(); "
                         "print(k.fetchall())", self.db_socket, query)

    def stop(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    # ---- set-up -------------------------------------------------------------------------------

    def _create_database(self):
        self._run("import pymysql,sys; c=pymysql.connect(unix_socket=sys.argv[1], user='root'); "
                  "c.cursor().execute('DROP DATABASE IF EXISTS magnum'); "
                  "c.cursor().execute('CREATE DATABASE magnum CHARACTER SET utf8mb4')", self.db_socket)

    def _bootstrap_identity(self):
        """Magnum's service user, and the trustee domain where it makes one user per cluster."""
        import openstack

        conn = openstack.connect(**self.tier.auth)
        ident = conn.identity
        admin_role = ident.find_role("admin")
        service = ident.find_project("service", domain_id="default")
        user = ident.find_user("magnum", domain_id="default")
        if user is None:
            user = ident.create_user(name="magnum", password=self.password, domain_id="default")
        else:  # a reused tier: a new password per Magnum start
            ident.update_user(user, password=self.password)
        ident.assign_project_role_to_user(service, user, admin_role)
        domain = ident.find_domain(TRUSTEE_DOMAIN)
        if domain is None:
            domain = ident.create_domain(name=TRUSTEE_DOMAIN, description="Magnum cluster trustees")
        domain_admin = ident.find_user("magnum_domain_admin", domain_id=domain.id)
        if domain_admin is None:
            domain_admin = ident.create_user(name="magnum_domain_admin", password=self.password,
                                             domain_id=domain.id)
        else:
            ident.update_user(domain_admin, password=self.password)
        ident.assign_domain_role_to_user(domain, domain_admin, admin_role)
        conn.close()

    def _write_config(self):
        auth_url = self.tier.auth["auth_url"]
        db = f"mysql+pymysql://root@localhost/magnum?unix_socket={self.db_socket}&charset=utf8mb4"
        os.makedirs(self._path("locks"), exist_ok=True)
        paste = os.path.join(magnum_venv.venv_path(), "etc", "magnum", "api-paste.ini")
        service_auth = f"""
auth_url = {auth_url}
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = magnum
password = {self.password}
region_name = {REGION}
"""
        clients = "".join(f"[{name}_client]\nregion_name = {REGION}\nendpoint_type = publicURL\n"
                          for name in ("heat", "glance", "nova", "neutron", "cinder", "octavia", "magnum"))
        text = f"""[DEFAULT]
use_stderr = true
host = bayctl-magnum
transport_url = {self.transport_url}
state_path = {self.workdir}
[api]
host = {HOST}
port = {MAGNUM_PORT}
workers = 1
api_paste_config = {paste}
[conductor]
workers = 1
[database]
connection = {db}
[keystone_authtoken]
www_authenticate_uri = {auth_url}
auth_version = v3
memcached_servers =
{service_auth}
[keystone_auth]
{service_auth}
[trust]
trustee_domain_name = {TRUSTEE_DOMAIN}
trustee_domain_admin_name = magnum_domain_admin
trustee_domain_admin_password = {self.password}
trustee_keystone_interface = public
trustee_keystone_region_name = {REGION}
cluster_user_trust = false
[certificates]
# Certificates in Magnum's own database: there is no Barbican here.
cert_manager_type = x509keypair
[drivers]
verify_ca = false
send_cluster_metrics = false
[cinder]
default_docker_volume_type =
[oslo_concurrency]
lock_path = {self._path('locks')}
[oslo_messaging_notifications]
driver = noop
{clients}"""
        fd = os.open(self._path("magnum.conf"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)

"""Start the REAL keystone + glance + heat (+ a private MariaDB for heat) on 127.0.0.1.

Ports are in bayctl-cloud's test range 15500-15599. Everything lives in one work directory
and dies with `Tier.stop()`. Facts this follows are in shared/PLATFORM.md: sqlite is fine for
keystone and glance, but heat's engine threads lock sqlite, so heat gets MariaDB.

Messaging: a private RabbitMQ (cloudtier/rabbitmq.py, Debian's rabbitmq-server on the tier's own
ports) started beside MariaDB, and heat-api and heat-engine as SEPARATE processes over it, as in
a real deployment; `tier.transport_url` is the broker's oslo.messaging URL for other services
(real Magnum). Without rabbitmq-server, or with BAYCTL_CLOUD_MESSAGING=fake, heat-api and the
engine share one process over oslo.messaging's in-process fake:// (transport_url is then None).
The broker boots during MariaDB + the migrations (it is ready before they end), but its Erlang
boot takes CPU from them on 2 cores: measured once each, total 43.5 s with RabbitMQ vs 34.5 s
over fake:// (migrations 17.3 vs 10.5 s; heat-engine consuming 0.4 s after heat-api answers);
stop() 2.6 vs 0.1 s. tier.timings has the parts.

    tier = Tier(workdir); tier.start(); ...; tier.stop()
    tier.auth -> dict for openstack.connect(**tier.auth)
"""

import http.client
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

from harness.cloudtier import magnum_heat_env, rabbitmq, venv
from harness.emulators import vms

HOST = "127.0.0.1"
# One tier per machine at a time on these ports; BAYCTL_CLOUD_PORT_BASE moves a second one
# (e.g. a developer's run beside CI's) to another hundred in 15000-15999.
_BASE = int(os.environ.get("BAYCTL_CLOUD_PORT_BASE", "15500"))
PORTS = {"keystone": _BASE, "glance": _BASE + 92, "heat": _BASE + 4, "heat-cfn": _BASE + 5,
         "mariadb": _BASE + 6,
         "nova": _BASE + 74, "neutron": _BASE + 96, "magnum": _BASE + 11,
         "rabbitmq": _BASE + 30, "rabbitmq-dist": _BASE + 31, "rabbitmq-epmd": _BASE + 32}
REGION = "RegionOne"
SERVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serve.py")

# Glance's per-project storage quota: small, so a test can hit it with a few-MB image.
GLANCE_USER_QUOTA_MB = 4
# The VM tier's project (tests/harness/fixtures_vm.py) holds the built node image: room for it.
VM_PROJECT = "vms"
VM_PROJECT_IMAGE_MB = 4096


# heat-api-cfn's DescribeStackResource (os-collect-config's metadata poll on POLL_SERVER_CFN
# servers) is "(role:reader and project_id:%(project_id)s) or (role:heat_stack_user and
# project_id:%(project_id)s)" in Heat 27's new defaults, but the CFN API checks it with an
# empty target: no project_id ever matches, and every server's poll is AccessDenied. The stack
# user's own half without the target: heat-engine still serves a stack user only its own
# server's resource (describe_stack_resource checks access_allowed).
HEAT_POLICY = ('"cloudformation:DescribeStackResource": '
               '"(role:reader and project_id:%(project_id)s) or role:heat_stack_user"\n')


class TierError(RuntimeError):
    pass


def wait_http(port, path="/", timeout=90.0, proc=None, what=""):
    """Poll until the port answers HTTP (any status). Every probe has its own timeout:
    a crash-looping server can accept connections and never answer (PLATFORM.md)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise TierError(f"{what or port} exited with {proc.returncode} while starting")
        try:
            c = http.client.HTTPConnection(HOST, port, timeout=3)
            c.request("GET", path)
            status = c.getresponse().status
            c.close()
            if status < 500:
                return
            last = f"HTTP {status}"
        except OSError as e:
            last = e
        time.sleep(0.25)
    raise TierError(f"{what or port} not ready after {timeout:.0f}s: {last}")


def stop_process_groups(procs, grace=15.0):
    """SIGTERM every started service's process group (the last started first), then wait for
    all within one shared `grace` (they were all told at once), SIGKILL what is left; empties
    `procs` (name -> Popen)."""
    for _name, proc in reversed(list(procs.items())):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
    deadline = time.monotonic() + grace
    for _name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    procs.clear()


def log_tail(path, chars=4000):
    """The end of a service's log, for an error message ("" if there is none)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()[-chars:]
    except OSError:
        return ""


def _require_free_port(name, port):
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT from a previous run is fine
        try:
            s.bind((HOST, port))
        except OSError:
            raise TierError(f"port {port} for {name} is taken (a tier left over by a killed test run?)") \
                from None


class Tier:
    def __init__(self, workdir):
        self.workdir = workdir
        self.python = venv.python()
        self.procs = {}
        self.admin_password = secrets.token_urlsafe(18)
        self.service_password = secrets.token_urlsafe(18)
        self.db_socket = os.path.join(workdir, "mariadb", "mysqld.sock")
        self.timings = {}
        use_rabbit = os.environ.get("BAYCTL_CLOUD_MESSAGING", "rabbit") != "fake" and rabbitmq.installed()
        self.broker = rabbitmq.Broker(workdir, PORTS["rabbitmq"], PORTS["rabbitmq-dist"],
                                      PORTS["rabbitmq-epmd"]) if use_rabbit else None

    @property
    def transport_url(self):
        """oslo.messaging URL of the tier's RabbitMQ (holds its password: never print it), or
        None when the tier runs heat over in-process fake://."""
        return self.broker.transport_url if self.broker else None

    # ---- helpers -------------------------------------------------------------------------

    def _path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def _write(self, rel, text):
        path = self._path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Config snippets are written indented in this file; every line loses its indent.
        with open(path, "w") as f:
            f.write("\n".join(line.strip() for line in text.strip().splitlines()) + "\n")
        return path

    # `python -c` entry points of the tier venv: no dependence on the scripts' shebang lines.
    MANAGE = {
        "keystone": "import sys; sys.argv[0]='keystone-manage'; from keystone.cmd.manage import main; main()",
        "glance": "import sys; sys.argv[0]='glance-manage'; from glance.cmd.manage import main; main()",
        "heat": "import sys; sys.argv[0]='heat-manage'; from heat.cmd.manage import main; main()",
    }

    def _manage_argv(self, code, args):
        service = "keystone" if "keystone" in code else "glance" if "glance" in code else "heat"
        conf = {"keystone": self._path("keystone", "keystone.conf"),
                "glance": self._path("glance", "glance-api.conf"),
                "heat": self._path("heat", "heat.conf")}[service]
        return [self.python, "-c", code, "--config-file", conf, *args]

    def _run_parallel(self, jobs):
        env = {**os.environ, "OS_BOOTSTRAP_PASSWORD": self.admin_password}
        procs = [(code, args, subprocess.Popen(self._manage_argv(code, args), stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True, env=env))
                 for code, args in jobs]
        failed = []
        for _code, args, proc in procs:
            out, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                failed.append(f"{' '.join(args)}: {out[-2000:]}")
        if failed:
            raise TierError("tier set-up failed:\n" + "\n".join(failed))

    def _run_venv(self, code, *args, env=None):
        """Run a console entry point of the tier venv (`python -c` so no shebang is involved)."""
        res = subprocess.run([self.python, "-c", code, *args], capture_output=True, text=True,
                             env={**os.environ, **(env or {})}, timeout=300)
        if res.returncode != 0:
            raise TierError(f"{code} {' '.join(args)} failed:\n{res.stderr[-3000:]}")
        return res.stdout

    def _spawn(self, name, argv, env=None):
        log = open(self._path(f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **(env or {})}, start_new_session=True,
                                            preexec_fn=rabbitmq.unblock_signals)
        return self.procs[name]

    def log_tail(self, name, chars=4000):
        return log_tail(self._path(f"{name}.log"), chars)

    @property
    def auth_url(self):
        return f"http://{HOST}:{PORTS['keystone']}/v3"

    @property
    def auth(self):
        """openstack.connect() arguments for the admin user in the admin project."""
        return dict(auth_url=self.auth_url, username="admin", password=self.admin_password,
                    project_name="admin", user_domain_name="Default", project_domain_name="Default",
                    region_name=REGION, identity_api_version="3")

    def user_auth(self, username, password, project):
        return dict(self.auth, username=username, password=password, project_name=project)

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self):
        t0 = time.monotonic()
        os.makedirs(self.workdir, exist_ok=True)
        names = ["keystone", "glance", "heat", "heat-cfn", "mariadb"]
        if self.broker:
            names += ["rabbitmq", "rabbitmq-dist", "rabbitmq-epmd"]
        for name in names:
            _require_free_port(name, PORTS[name])
        if self.broker:  # boots (~5-12 s of Erlang) while MariaDB and the migrations run
            self.broker.spawn()
        self._start_mariadb()
        # Schema migrations and key setup do not need each other: run them side by side
        # (each is a python start-up plus imports, the slow part on a busy 2-core machine).
        self._write_configs()
        self._run_parallel([
            (self.MANAGE["keystone"], ["db_sync"]),
            (self.MANAGE["keystone"], ["fernet_setup", "--keystone-user", "root",
                                       "--keystone-group", "root"]),
            (self.MANAGE["keystone"], ["credential_setup", "--keystone-user", "root",
                                       "--keystone-group", "root"]),
            (self.MANAGE["glance"], ["db_sync"]),
            (self.MANAGE["heat"], ["db_sync"]),
        ])
        self.timings["migrations"] = round(time.monotonic() - t0, 2)
        self._start_keystone()
        self._bootstrap_identity()
        # glance and heat are independent once keystone knows them: start both, then wait.
        glance = self._spawn("glance", [self.python, SERVE, "glance", str(PORTS["glance"]),
                                        self._path("glance")])
        heat_conf = self._path("heat", "heat.conf")
        if self.broker:
            t1 = time.monotonic()
            self.broker.wait_ready()
            self.timings["rabbitmq_wait"] = round(time.monotonic() - t1, 2)
            engine = self._spawn_heat_engine()
            heat = self._spawn("heat", [self.python, SERVE, "heat-api", str(PORTS["heat"]), heat_conf])
            cfn = self._spawn("heat-api-cfn", [self.python, SERVE, "heat-api-cfn", str(PORTS["heat-cfn"]),
                                               heat_conf])
        else:
            heat = cfn = self._spawn_heat_engine()
        wait_http(PORTS["glance"], "/versions", proc=glance, what="glance")
        wait_http(PORTS["heat"], "/", proc=heat, what="heat")
        wait_http(PORTS["heat-cfn"], "/", proc=cfn, what="heat-api-cfn")
        if self.broker:
            self._wait_engine_consuming(engine)
        self.timings["total"] = round(time.monotonic() - t0, 2)
        return self

    HEAT_ENGINE = "import sys; sys.argv[0]='heat-engine'; from heat.cmd.engine import main; main()"
    # Passive declare of heat's RPC queue until it exists: the engine consumes from then on (an
    # RPC cast to a topic nobody has declared yet is dropped by RabbitMQ, and a call would wait
    # out rpc_response_timeout). kombu is oslo.messaging's own AMQP library, in the tier venv.
    ENGINE_QUEUE_WAIT = (
        "import sys, time, kombu\n"
        "deadline = time.monotonic() + float(sys.argv[1])\n"
        "url = sys.stdin.read().strip().replace('rabbit://', 'amqp://', 1)\n"
        "while True:\n"
        "    with kombu.Connection(url, connect_timeout=5) as conn:\n"
        "        try:\n"
        "            conn.default_channel.queue_declare('engine', passive=True)\n"
        "            break\n"
        "        except conn.channel_errors:\n"
        "            pass\n"
        "    if time.monotonic() > deadline:\n"
        "        sys.exit('heat-engine queue not declared in time')\n"
        "    time.sleep(0.3)\n")

    def _spawn_heat_engine(self):
        """heat-engine (with the broker), else heat-api + engine + heat-api-cfn in one process."""
        heat_conf = self._path("heat", "heat.conf")
        if self.broker:
            return self._spawn("heat-engine",
                               [self.python, "-c", self.HEAT_ENGINE, "--config-file", heat_conf])
        return self._spawn("heat", [self.python, SERVE, "heat", str(PORTS["heat"]), heat_conf,
                                    str(PORTS["heat-cfn"])])

    @property
    def magnum_standins(self):
        """Whether Heat's global environment maps REAL Magnum's mesos resources to stand-ins."""
        return os.path.exists(os.path.join(self._path("heat", "environment.d"), magnum_heat_env.FILE_NAME))

    def use_magnum_standins(self, wanted):
        """Map REAL Magnum's mesos servers, ports, deployments ... to stand-ins (the default:
        no Nova or Neutron behind them), or not (the VM tier: real VMs run Magnum's templates).
        Heat's engine reads its global environment when it starts: restarted on a change."""
        if wanted == self.magnum_standins:
            return
        env_dir = self._path("heat", "environment.d")
        if wanted:
            magnum_heat_env.write(env_dir)
        else:
            os.remove(os.path.join(env_dir, magnum_heat_env.FILE_NAME))
        name = "heat-engine" if self.broker else "heat"
        stop_process_groups({name: self.procs.pop(name)})
        proc = self._spawn_heat_engine()
        if self.broker:
            self._wait_engine_consuming(proc)
        else:
            wait_http(PORTS["heat"], "/", proc=proc, what="heat")
            wait_http(PORTS["heat-cfn"], "/", proc=proc, what="heat-api-cfn")

    def _wait_engine_consuming(self, engine, timeout=120):
        t0 = time.monotonic()
        waiter = subprocess.Popen([self.python, "-c", self.ENGINE_QUEUE_WAIT, str(timeout)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
        waiter.stdin.write(self.transport_url)  # the password goes through a pipe, not argv
        waiter.stdin.close()
        while waiter.poll() is None:
            if engine.poll() is not None:
                waiter.kill()
                waiter.wait()
                raise TierError(f"heat-engine exited with {engine.returncode} while starting:\n"
                                + self.log_tail("heat-engine"))
            time.sleep(0.2)
        out = waiter.stdout.read()
        if waiter.returncode != 0:
            raise TierError("heat-engine did not start consuming RPC: "
                            + out[-1500:].replace(self.broker._password, "***") + "\n"
                            + self.log_tail("heat-engine"))
        self.timings["heat_engine_wait"] = round(time.monotonic() - t0, 2)

    def stop(self):
        stop_process_groups(self.procs)
        if self.broker:  # after heat: its engine and API close their AMQP connections first
            self.broker.stop()

    # ---- MariaDB (keystone's and heat's database) -------------------------------------------

    def _start_mariadb(self):
        t0 = time.monotonic()
        datadir = self._path("mariadb", "data")
        if not os.path.exists("/usr/sbin/mariadbd"):
            raise TierError("mariadb-server is not installed (tools/setup.d/50-cloud.sh installs it)")
        tmpdir = self._path("mariadb", "tmp")
        os.makedirs(datadir, exist_ok=True)
        os.makedirs(tmpdir, exist_ok=True)
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={datadir}", "--user=root",
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        proc = self._spawn("mariadb", [
            "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={datadir}", "--user=root",
            f"--socket={self.db_socket}", f"--port={PORTS['mariadb']}", f"--bind-address={HOST}",
            f"--pid-file={self._path('mariadb', 'mysqld.pid')}", "--skip-log-bin",
            # Its own temp dir: /tmp is shared with everything else on the machine (a cleaner
            # there broke a heat query: "Error on delete of '/tmp/#sql-temptable...'").
            f"--tmpdir={tmpdir}",
            "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0",
            "--max-connections=300", "--character-set-server=utf8mb4"])
        deadline = time.monotonic() + 60
        while not os.path.exists(self.db_socket):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise TierError("mariadbd did not start:\n" + self.log_tail("mariadb"))
            time.sleep(0.1)
        self._run_venv(
            "import pymysql,sys; c=pymysql.connect(unix_socket=sys.argv[1], user='root'); k=c.cursor()\n"
            "for db in ('keystone', 'heat'):\n"
            "    k.execute(f'CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4')",
            self.db_socket)
        self.timings["mariadb"] = round(time.monotonic() - t0, 2)

    def _db_url(self, name):
        return f"mysql+pymysql://root@localhost/{name}?unix_socket={self.db_socket}&charset=utf8mb4"

    # ---- configuration ------------------------------------------------------------------------

    def _write_configs(self):
        venv_etc = os.path.join(venv.venv_path(), "etc")
        kdir = self._path("keystone")
        for sub in ("fernet-keys", "credential-keys"):
            os.makedirs(os.path.join(kdir, sub), mode=0o700, exist_ok=True)
        # keystone on MariaDB too: heat creates and deletes stack users concurrently, and
        # keystone's sqlite answered "database is locked" (HTTP 500) under that.
        self._write("keystone/keystone.conf", f"""
            [DEFAULT]
            use_stderr = true
            [database]
            connection = {self._db_url('keystone')}
            [identity]
            # bcrypt's minimum cost: every test login hashes, and these are throwaway passwords.
            password_hash_rounds = 4
            [token]
            provider = fernet
            [fernet_tokens]
            key_repository = {kdir}/fernet-keys
            [credential]
            key_repository = {kdir}/credential-keys
            # How long an EC2-signed request stays valid: Heat signs a deployment's CFN signal URL
            # when it creates the deployment, and a TCG guest on a busy machine sends it more than
            # the default 15 minutes later (keystone: "Credential is expired", HTTP 401).
            auth_ttl = 120
            """)

        gdir = self._path("glance")
        os.makedirs(os.path.join(gdir, "images"), exist_ok=True)
        shutil.copy(os.path.join(venv_etc, "glance", "glance-api-paste.ini"), gdir)
        self._write("glance/glance-api.conf", f"""
            [DEFAULT]
            use_stderr = true
            enabled_backends = local:file
            # Per-project image quotas from keystone's unified limits (registered in
            # _bootstrap_identity): GLANCE_USER_QUOTA_MB for every project, VM_PROJECT_IMAGE_MB
            # for the VM tier's project, whose node image is ~1.3 GB.
            use_keystone_limits = true
            [oslo_limit]
            auth_url = {self.auth_url}
            auth_type = password
            username = glance
            password = {self.service_password}
            user_domain_name = Default
            project_name = service
            project_domain_name = Default
            endpoint_service_type = image
            endpoint_region_name = {REGION}
            endpoint_interface = public
            [glance_store]
            default_backend = local
            [local]
            filesystem_store_datadir = {gdir}/images
            [os_glance_staging_store]
            filesystem_store_datadir = {gdir}/staging
            [os_glance_tasks_store]
            filesystem_store_datadir = {gdir}/tasks
            [database]
            connection = sqlite:///{gdir}/glance.db
            [paste_deploy]
            flavor = keystone
            """ + self._authtoken("glance"))

        hdir = self._path("heat")
        os.makedirs(hdir, exist_ok=True)
        shutil.copy(os.path.join(venv_etc, "heat", "api-paste.ini"), hdir)
        # Where a VM of the VM tier reaches heat-api-cfn (qemu user-net guestfwd, emulators/vms.py):
        # os-collect-config polls its metadata there and heat-config-notify signals deployments
        # (POLL_SERVER_CFN, Heat's default transport, which Magnum's mesos master uses). Heat
        # renders both into what a server gets, as an operator sets them for servers that
        # cannot reach the catalog's endpoint.
        cfn_guest_url = f"http://{vms.HEAT_GUEST_ADDRESS}:{PORTS['heat-cfn']}"
        # Name-scoped stand-ins for REAL Magnum's mesos templates (no type is mapped globally).
        magnum_heat_env.write(os.path.join(hdir, "environment.d"))
        self._write("heat/policy.yaml", HEAT_POLICY)
        self._write("heat/heat.conf", f"""
            [DEFAULT]
            use_stderr = true
            transport_url = {self.transport_url or 'fake://'}
            num_engine_workers = 1
            # A test tier: stop() should not wait out oslo.service's 60 s for in-flight work.
            graceful_shutdown_timeout = 5
            # Tests fail resources on purpose: no re-creating a failed server 5 times (~80 s each run).
            action_retry_limit = 0
            host = bayctl-tier
            region_name_for_services = {REGION}
            heat_metadata_server_url = {cfn_guest_url}
            heat_waitcondition_server_url = {cfn_guest_url}/v1/waitcondition
            stack_domain_admin = heat_domain_admin
            stack_domain_admin_password = {self.service_password}
            stack_user_domain_name = heat
            max_nested_stack_depth = 6
            environment_dir = {hdir}/environment.d
            [database]
            connection = {self._db_url('heat')}
            max_pool_size = 20
            [paste_deploy]
            api_paste_config = {hdir}/api-paste.ini
            [oslo_policy]
            policy_file = {hdir}/policy.yaml
            [clients_heat]
            # The signal URL Heat renders into wait-condition handles: the address where a
            # VM of the VM tier reaches this heat-api (qemu user-net forward, emulators/vms.py).
            # Host-side signallers (emulators/nodeboot.py) send to the same path here.
            url = http://{vms.HEAT_GUEST_ADDRESS}:{PORTS['heat']}/v1/%(tenant_id)s
            [clients_keystone]
            auth_uri = {self.auth_url.rsplit('/v3', 1)[0]}
            [ec2authtoken]
            # heat-api-cfn checks a request's EC2 signature with keystone (/v3/ec2tokens), which
            # answers only a service user or an admin (keystone's identity:ec2tokens_validate):
            # as heat's service user. heat appends /v3/ec2tokens to the endpoint itself.
            endpoint_override = {self.auth_url.rsplit('/v3', 1)[0]}
            auth_type = password
            auth_url = {self.auth_url}
            username = heat
            password = {self.service_password}
            user_domain_name = Default
            project_name = service
            project_domain_name = Default
            [trustee]
            auth_type = password
            auth_url = {self.auth_url}
            username = heat
            password = {self.service_password}
            user_domain_name = Default
            [oslo_messaging_notifications]
            driver = noop
            """ + self._authtoken("heat"))

    # ---- keystone ---------------------------------------------------------------------------

    def _start_keystone(self):
        t0 = time.monotonic()
        # The password goes through the environment (OS_BOOTSTRAP_PASSWORD), not argv.
        self._run_parallel([(self.MANAGE["keystone"], [
            "bootstrap",
            "--bootstrap-admin-url", self.auth_url + "/", "--bootstrap-internal-url", self.auth_url + "/",
            "--bootstrap-public-url", self.auth_url + "/", "--bootstrap-region-id", REGION])])
        proc = self._spawn("keystone", [self.python, SERVE, "keystone", str(PORTS["keystone"]),
                                        self._path("keystone")])
        wait_http(PORTS["keystone"], "/v3", proc=proc, what="keystone")
        self.timings["keystone"] = round(time.monotonic() - t0, 2)

    def _bootstrap_identity(self):
        """Service project and users, the heat stack domain, roles, and the catalog."""
        import openstack

        t0 = time.monotonic()
        conn = openstack.connect(**self.auth)
        ident = conn.identity
        service = ident.create_project(name="service", domain_id="default")
        admin_role = ident.find_role("admin")
        member = ident.find_role("member")
        ident.find_role("reader")
        for name in ("glance", "heat"):
            user = ident.create_user(name=name, password=self.service_password, domain_id="default")
            ident.assign_project_role_to_user(service, user, admin_role)
        for name in ("heat_stack_owner", "heat_stack_user"):
            ident.create_role(name=name)
        # Heat keeps the users it makes for wait-condition signals in their own domain.
        heat_domain = ident.create_domain(name="heat", description="Stack projects and users")
        domain_admin = ident.create_user(name="heat_domain_admin", password=self.service_password,
                                         domain_id=heat_domain.id)
        ident.assign_domain_role_to_user(heat_domain, domain_admin, admin_role)
        # A plain member project with a user, and a reader-only user (permission tests).
        demo = ident.create_project(name="demo", domain_id="default")
        self.demo_password = secrets.token_urlsafe(12)
        demo_user = ident.create_user(name="demo", password=self.demo_password, domain_id="default")
        ident.assign_project_role_to_user(demo, demo_user, member)
        ident.assign_project_role_to_user(demo, demo_user, ident.find_role("heat_stack_owner"))
        viewer = ident.create_user(name="viewer", password=self.demo_password, domain_id="default")
        ident.assign_project_role_to_user(demo, viewer, ident.find_role("reader"))
        catalog = {
            "image": ("glance", f"http://{HOST}:{PORTS['glance']}"),
            "orchestration": ("heat", f"http://{HOST}:{PORTS['heat']}/v1/%(project_id)s"),
            "cloudformation": ("heat-cfn", f"http://{HOST}:{PORTS['heat-cfn']}/v1"),
            "compute": ("nova", f"http://{HOST}:{PORTS['nova']}/v2.1"),
            "network": ("neutron", f"http://{HOST}:{PORTS['neutron']}"),
            "container-infra": ("magnum", f"http://{HOST}:{PORTS['magnum']}/v1"),
        }
        services = {}
        for svc_type, (name, url) in catalog.items():
            svc = services[svc_type] = ident.create_service(name=name, type=svc_type)
            for interface in ("public", "internal", "admin"):
                ident.create_endpoint(service_id=svc.id, interface=interface, url=url, region_id=REGION)
        self._register_image_limits(ident, services["image"], member)
        conn.close()
        self.heat_domain_id = heat_domain.id
        self.timings["identity_bootstrap"] = round(time.monotonic() - t0, 2)

    def _register_image_limits(self, ident, image_service, member):
        """Glance's unified limits (all four must exist, or Glance refuses every upload): the
        small test quota for every project; the VM tier's project and user get room for the
        node image. Sizes are MiB, as Glance counts them."""
        defaults = {"image_size_total": GLANCE_USER_QUOTA_MB, "image_stage_total": GLANCE_USER_QUOTA_MB,
                    "image_count_total": 100, "image_count_uploading": 10}
        for resource, limit in defaults.items():
            ident.create_registered_limit(service_id=image_service.id, region_id=REGION,
                                          resource_name=resource, default_limit=limit)
        vms = ident.create_project(name=VM_PROJECT, domain_id="default")
        user = ident.create_user(name=VM_PROJECT, password=self.demo_password, domain_id="default")
        ident.assign_project_role_to_user(vms, user, member)
        ident.assign_project_role_to_user(vms, user, ident.find_role("heat_stack_owner"))
        for resource in ("image_size_total", "image_stage_total"):
            ident.create_limit(project_id=vms.id, service_id=image_service.id, region_id=REGION,
                               resource_name=resource, resource_limit=VM_PROJECT_IMAGE_MB)

    def _authtoken(self, user):
        return f"""
            [keystone_authtoken]
            www_authenticate_uri = {self.auth_url}
            auth_url = {self.auth_url}
            auth_type = password
            project_domain_name = Default
            user_domain_name = Default
            project_name = service
            username = {user}
            password = {self.service_password}
            region_name = {REGION}
            memcached_servers =
            """


if __name__ == "__main__":  # manual use: python -m harness.cloudtier.tier WORKDIR (from tests/)
    tier = Tier(sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/bayctl-cloud-manual")
    try:
        tier.start()
        print(tier.timings, tier.auth_url, "admin password in", tier.workdir, flush=True)
        signal.pause()
    finally:
        tier.stop()

"""REAL Nova (api, conductor, scheduler, compute with the libvirt driver, virt_type=qemu) and
REAL Placement beside the cloud tier, instead of the Nova emulator (opt-in: BAYCTL_REAL_NOVA=1).

Same release as the tier's keystone 30 / glance 33 / heat 27: nova 34.0.0, placement 16.0.0
(and neutron 29.0.0, neutron_real.py), in a virtualenv of their own under /var/cache/bayctl-ci
(realnova_venv()). Their databases live in the tier's MariaDB, their RPC goes over the tier's
RabbitMQ, they authenticate against the tier's keystone; nova-api answers at the port the
catalog's `compute` endpoint names, placement at its own (registered here).

nova-compute drives a libvirtd of its own (Debian's libvirt-daemon-system, started here with
its sockets in the work directory, virtlogd beside it), TCG only (no /dev/kvm here). Every
server gets a config drive (no metadata service runs). What ran and what did not on this
machine, with the errors: docs/platform-nova-neutron.md.

    nova = RealNova(tier, workdir); nova.start(); ...; nova.stop()
    nova.timings -> seconds per step
"""

import os
import shutil
import stat
import subprocess
import sys
import time

from harness.cloudtier import rabbitmq
from harness.cloudtier.tier import HOST, PORTS, REGION, TierError, log_tail, stop_process_groups, wait_http

VENV_REQUIREMENTS = ["nova==34.0.0", "openstack-placement==16.0.0", "neutron==29.0.0",
                     "libvirt-python", "PyMySQL>=1.1"]
DEFAULT_VENV = "/var/cache/bayctl-ci/realnova/venv"
PLACEMENT_PORT = PORTS["keystone"] + 78  # beside the tier's ports (BAYCTL_CLOUD_PORT_BASE + 78)
LIBVIRTD = "/usr/sbin/libvirtd"
VIRTLOGD = "/usr/sbin/virtlogd"
COMPUTE_HOST = "bayctl-realnova"
REAL_SERVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "real_serve.py")


def enabled(name):
    """BAYCTL_REAL_NOVA / BAYCTL_REAL_NEUTRON: "1" on, "0" or unset off; anything else is refused
    (a "true" silently meaning the emulator would hide that the real service never ran)."""
    value = os.environ.get(name, "")
    if value not in ("", "0", "1"):
        raise TierError(f"{name}={value!r}: set it to 1 (real service) or 0 (emulator)")
    return value == "1"


def realnova_venv():
    return os.environ.get("BAYCTL_REALNOVA_VENV", DEFAULT_VENV)


def venv_python():
    return os.path.join(realnova_venv(), "bin", "python")


def ensure_venv(log=sys.stderr):
    """Build the venv unless it exists (tools/setup.d/47-realnova.sh builds it ahead of time)."""
    stamp = os.path.join(realnova_venv(), ".bayctl-stamp")
    want = "\n".join(VENV_REQUIREMENTS)
    try:
        with open(stamp) as f:
            if f.read() == want:
                return venv_python()
    except OSError:
        pass
    # Built in place, the stamp written last (a half-built venv is never taken as ready): the
    # console scripts' shebangs name this path, and privsep-helper is run by its shebang (one
    # built beside and renamed failed: "No such file or directory: .../bin/privsep-helper").
    shutil.rmtree(realnova_venv(), ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", realnova_venv()], check=True)
    subprocess.run([venv_python(), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *VENV_REQUIREMENTS], check=True, stdout=log, stderr=log)
    with open(stamp, "w") as f:
        f.write(want)
    return venv_python()


def _entry(module):
    """`python -c` for a console script's main(), argv[0] set as the script would have it."""
    name = module.rsplit(".", 1)[-1].replace("_", "-")
    return f"import sys; sys.argv[0]='{name}'; from {module} import main; sys.exit(main())"


class RealServices:
    """Processes, configs and keystone registrations shared by RealNova and RealNeutron."""

    def __init__(self, tier, workdir):
        if tier.transport_url is None:
            raise TierError("real Nova/Neutron need the tier's RabbitMQ (rabbitmq-server)")
        self.tier = tier
        self.workdir = workdir
        self.python = venv_python()
        self.procs = {}
        self.timings = {}
        os.makedirs(workdir, exist_ok=True)

    def _path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def _write(self, rel, text, mode=0o600):
        path = self._path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as f:
            f.write("\n".join(line.strip() for line in text.strip().splitlines()) + "\n")
        return path

    def _spawn(self, name, argv, env=None):
        log = open(self._path(f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True,
            env={**os.environ, "PATH": os.path.dirname(self.python) + ":" + os.environ["PATH"],
                 **(env or {})},
            preexec_fn=rabbitmq.unblock_signals)
        return self.procs[name]

    def _run(self, what, argv, timeout=600):
        t0 = time.monotonic()
        path = os.path.dirname(self.python) + ":" + os.environ["PATH"]
        res = subprocess.run(argv, capture_output=True, text=True, cwd=self.workdir, timeout=timeout,
                             env={**os.environ, "PATH": path})
        self.timings[what] = round(time.monotonic() - t0, 2)
        if res.returncode != 0:
            raise TierError(f"{what} failed (exit {res.returncode}):\n{(res.stdout + res.stderr)[-3000:]}")
        return res.stdout

    def log_tail(self, name, chars=4000):
        return log_tail(self._path(f"{name}.log"), chars)

    def create_databases(self, *names):
        self.tier._run_venv(
            "import pymysql,sys; c=pymysql.connect(unix_socket=sys.argv[1], user='root'); k=c.cursor()\n"
            "for db in sys.argv[2:]:\n"
            "    k.execute(f'CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4')",
            self.tier.db_socket, *names)

    def register(self, users, services=()):
        """Service users (admin in `service`) and catalog entries (type, name, url)."""
        import openstack

        conn = openstack.connect(**self.tier.auth)
        ident = conn.identity
        service_project = ident.find_project("service", domain_id="default")
        admin = ident.find_role("admin")
        service_role = ident.find_role("service", ignore_missing=True) or ident.create_role(name="service")
        for name in users:
            user = ident.find_user(name, domain_id="default", ignore_missing=True) or ident.create_user(
                name=name, password=self.tier.service_password, domain_id="default")
            ident.assign_project_role_to_user(service_project, user, admin)
            ident.assign_project_role_to_user(service_project, user, service_role)
        for svc_type, name, url in services:
            svc = ident.create_service(name=name, type=svc_type)
            for interface in ("public", "internal", "admin"):
                ident.create_endpoint(service_id=svc.id, interface=interface, url=url, region_id=REGION)
        conn.close()

    def keystone_section(self, section, user):
        return f"""
            [{section}]
            auth_url = {self.tier.auth_url}
            auth_type = password
            project_domain_name = Default
            user_domain_name = Default
            project_name = service
            username = {user}
            password = {self.tier.service_password}
            region_name = {REGION}
            """

    def authtoken(self, user):
        return self.keystone_section("keystone_authtoken", user) + f"""
            www_authenticate_uri = {self.tier.auth_url}
            memcached_servers =
            service_token_roles_required = true
            """

    def check_alive(self):
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise TierError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def stop(self):
        stop_process_groups(self.procs)


class RealNova(RealServices):
    def __init__(self, tier, workdir, neutron=None):
        super().__init__(tier, workdir)
        self.neutron = neutron  # a RealNeutron: os-vif plugs ports into its private ovsdb
        self.libvirt_dir = self._path("libvirt")
        self.libvirt_uri = f"qemu:///system?socket={self.libvirt_dir}/run/libvirt-sock"
        self.conf = self._path("nova", "nova.conf")

    @property
    def placement_url(self):
        return f"http://{HOST}:{PLACEMENT_PORT}"

    def start(self):
        t0 = time.monotonic()
        for tool in (LIBVIRTD, VIRTLOGD, "/usr/bin/genisoimage"):
            if not os.access(tool, os.X_OK):
                raise TierError(f"{tool} is missing (tools/setup.d/47-realnova.sh installs libvirt)")
        self.create_databases("placement", "nova_api", "nova", "nova_cell0")
        self.register(["nova", "placement"], [("placement", "placement", self.placement_url)])
        self.timings["keystone_and_databases"] = round(time.monotonic() - t0, 2)
        self._write_configs()
        self._let_qemu_reach(self._path("nova", "instances"))
        self._start_libvirt()
        manage = [self.python, "-c", _entry("nova.cmd.manage"), "--config-file", self.conf]
        self._run("placement_db_sync", [self.python, "-c", _entry("placement.cmd.manage"),
                                        "--config-file", self._path("placement", "placement.conf"),
                                        "db", "sync"])
        placement = self._spawn("placement", [self.python, REAL_SERVE, "placement", str(PLACEMENT_PORT),
                                              self._path("placement")])
        self._run("nova_api_db_sync", manage + ["api_db", "sync"])
        self._run("nova_map_cell0", manage + ["cell_v2", "map_cell0", "--database_connection",
                                              self.tier._db_url("nova_cell0")])
        self._run("nova_create_cell1", manage + ["cell_v2", "create_cell", "--name", "cell1"])
        self._run("nova_db_sync", manage + ["db", "sync"])
        wait_http(PLACEMENT_PORT, "/", proc=placement, what="placement")
        api = self._spawn("nova-api", [self.python, REAL_SERVE, "nova-api", str(PORTS["nova"]),
                                       self._path("nova")])
        # os-vif may run `ovs-vsctl` too: OVS_RUNDIR points it at neutron's private ovsdb.
        ovs_env = {"OVS_RUNDIR": self.neutron.ovs_dir} if self.neutron else {}
        for name in ("conductor", "scheduler", "compute"):
            self._spawn(f"nova-{name}", [self.python, "-c", _entry(f"nova.cmd.{name}"),
                                         "--config-file", self.conf], env=ovs_env)
        wait_http(PORTS["nova"], "/", proc=api, what="nova-api", timeout=180)
        self._wait_compute_up()
        self._run("nova_discover_hosts", manage + ["cell_v2", "discover_hosts", "--verbose"])
        self.timings["total"] = round(time.monotonic() - t0, 2)
        return self

    def stop(self):
        """Destroy the guests left running first: qemu outlives a stopped libvirtd."""
        if self.procs.get("libvirtd") is not None and self.procs["libvirtd"].poll() is None:
            names = subprocess.run(["virsh", "-c", self.libvirt_uri, "list", "--name"],
                                   capture_output=True, text=True, timeout=60).stdout.split()
            for name in names:
                subprocess.run(["virsh", "-c", self.libvirt_uri, "destroy", name],
                               capture_output=True, timeout=60)
        super().stop()

    @staticmethod
    def _let_qemu_reach(path):
        """libvirt runs qemu as libvirt-qemu (uid 64055) and chowns the disks to it, but the
        directories above must let it through: mkdtemp's 0700 gave "Cannot access storage file
        '.../instances/<uuid>/disk' (as uid:64055, gid:64055): Permission denied". Adds search
        (x, not read) for others on each ancestor that lacks it."""
        path = os.path.abspath(path)
        while path != "/":
            mode = os.stat(path).st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(path, stat.S_IMODE(mode) | stat.S_IXOTH)
            path = os.path.dirname(path)

    def _wait_compute_up(self, timeout=300):
        """Until nova-compute has reported its host (a compute service record) and placement has
        its resource provider: only then can the scheduler pick it."""
        import openstack

        t0 = time.monotonic()
        conn = openstack.connect(**self.tier.auth)
        try:
            while True:
                self.check_alive()
                # nova-compute can log its fatal error and linger (non-daemon threads): fail now.
                if " CRITICAL " in self.log_tail("nova-compute", 200000):
                    raise TierError("nova-compute failed:\n" + self.log_tail("nova-compute"))
                services = [s for s in conn.compute.services() if s.binary == "nova-compute"]
                if services and services[0].state == "up":
                    providers = conn.session.get(self.placement_url + "/resource_providers",
                                                 endpoint_filter=None).json()["resource_providers"]
                    if providers:
                        break
                if time.monotonic() - t0 > timeout:
                    raise TierError(f"nova-compute not up after {timeout}s:\n"
                                    + self.log_tail("nova-compute"))
                time.sleep(1)
        finally:
            conn.close()
        self.timings["compute_up"] = round(time.monotonic() - t0, 2)

    def _start_libvirt(self):
        t0 = time.monotonic()
        run = os.path.join(self.libvirt_dir, "run")
        os.makedirs(run, exist_ok=True)
        conf = self._write("libvirt/libvirtd.conf", f"""
            unix_sock_dir = "{run}"
            unix_sock_rw_perms = "0700"
            auth_unix_rw = "none"
            auth_unix_ro = "none"
            log_outputs = "3:stderr"
            """)
        # virtlogd keeps the serial console log nova-compute asks libvirt for (console.log).
        self._spawn("virtlogd", [VIRTLOGD])
        proc = self._spawn("libvirtd", [LIBVIRTD, "-f", conf, "-p", os.path.join(run, "libvirtd.pid")])
        sock = os.path.join(run, "libvirt-sock")
        deadline = time.monotonic() + 60
        while not os.path.exists(sock):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise TierError("libvirtd did not start:\n" + self.log_tail("libvirtd"))
            time.sleep(0.1)
        self.timings["libvirtd"] = round(time.monotonic() - t0, 2)

    def _write_configs(self):
        db = self.tier._db_url
        self._write("placement/placement.conf", f"""
            [DEFAULT]
            use_stderr = true
            [api]
            auth_strategy = keystone
            [placement_database]
            connection = {db('placement')}
            """ + self.authtoken("placement"))
        for sub in ("state", "instances", "locks"):
            os.makedirs(self._path("nova", sub), exist_ok=True)
        shutil.copy(os.path.join(os.path.dirname(self.python), "..", "etc", "nova", "api-paste.ini"),
                    self._path("nova", "api-paste.ini"))
        privsep = f"{os.path.dirname(self.python)}/privsep-helper --config-file {self.conf}"
        neutron_url = f"http://{HOST}:{PORTS['neutron']}"
        self._write("nova/nova.conf", f"""
            [DEFAULT]
            use_stderr = true
            debug = false
            transport_url = {self.tier.transport_url}
            host = {COMPUTE_HOST}
            my_ip = 127.0.0.1
            compute_driver = libvirt.LibvirtDriver
            state_path = {self._path('nova', 'state')}
            instances_path = {self._path('nova', 'instances')}
            # No metadata service: every server gets a config drive, as the VM tier's servers do.
            force_config_drive = true
            # A test tier: no 60 s graceful wait in stop().
            graceful_shutdown_timeout = 5
            # 2 cores and 24 GB shared with the whole test run: no overcommit refusals.
            initial_ram_allocation_ratio = 4.0
            initial_cpu_allocation_ratio = 16.0
            initial_disk_allocation_ratio = 4.0
            [api]
            auth_strategy = keystone
            [wsgi]
            api_paste_config = {self._path('nova', 'api-paste.ini')}
            [api_database]
            connection = {db('nova_api')}
            [database]
            connection = {db('nova')}
            [oslo_concurrency]
            lock_path = {self._path('nova', 'locks')}
            [oslo_messaging_notifications]
            driver = noop
            [scheduler]
            discover_hosts_in_cells_interval = -1
            # One host: no rescheduling, so a failed build's fault is its own error, not
            # "Exceeded maximum number of retries".
            max_attempts = 1
            [libvirt]
            virt_type = qemu
            cpu_mode = none
            connection_uri = {self.libvirt_uri}
            [vnc]
            enabled = false
            [spice]
            enabled = false
            [glance]
            region_name = {REGION}
            [cinder]
            os_region_name = {REGION}
            [service_user]
            send_service_user_token = false
            [nova_sys_admin]
            helper_command = {privsep}
            [privsep_osbrick]
            helper_command = {privsep}
            [vif_plug_ovs_privileged]
            helper_command = {privsep}
            [os_vif_privileged]
            helper_command = {privsep}
            """ + self.authtoken("nova") + self.keystone_section("placement", "nova")
            + self.keystone_section("neutron", "nova") + f"endpoint_override = {neutron_url}\n"
            + (f"[os_vif_ovs]\novsdb_connection = unix:{self.neutron.ovsdb_sock}\n" if self.neutron else ""))

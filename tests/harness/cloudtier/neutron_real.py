"""REAL neutron-server 29.0.0 (ML2) beside the cloud tier instead of the Neutron emulator
(opt-in: BAYCTL_REAL_NEUTRON=1), in nova_real.py's virtualenv.

The L2 on this kernel (docs/platform-nova-neutron.md has the errors): neutron 29 no longer has
the linuxbridge driver; the kernel has no openvswitch module and no macvtap. What remains is
Open vSwitch's USERSPACE datapath (bridges with datapath_type=netdev, Debian's openvswitch-switch):
ML2 type `flat` + mechanism `openvswitch`, with a private ovsdb-server + ovs-vswitchd and the
real neutron-openvswitch-agent binding ports on br-int. BAYCTL_REAL_NEUTRON_L2=none runs the
server alone (API, IPAM, security groups are real; ports cannot bind).

The API is neutron.wsgi.api behind real_serve.py at the catalog's `network` port; RPC to the
agent goes through neutron-rpc-server over the tier's RabbitMQ.
"""

import os
import shutil
import subprocess
import time

from harness.cloudtier.nova_real import COMPUTE_HOST, RealServices, _entry
from harness.cloudtier.tier import HOST, PORTS, REGION, TierError, wait_http

NETWORK = "rnv-net"
PHYSNET = "rnvphys"
OVS_BRIDGE = "br-int"  # the agent's integration bridge; a private ovsdb, so no clash by name
# Every privsep context of neutron: as root the helper is the venv's privsep-helper (the default,
# `sudo privsep-helper`, finds none on sudo's secure_path:
# "sudo: privsep-helper: command not found").
PRIVSEP_SECTIONS = ("privsep", "privsep_ovs_vsctl", "privsep_link", "privsep_namespace",
                    "privsep_conntrack", "privsep_dhcp_release")
# The agent's OpenFlow controller port (default 6633, machine-wide): one beside the tier's ports.
OF_LISTEN_PORT = PORTS["keystone"] + 79


class RealNeutron(RealServices):
    def __init__(self, tier, workdir):
        super().__init__(tier, workdir)
        self.l2 = os.environ.get("BAYCTL_REAL_NEUTRON_L2", "ovs-netdev")
        self.ovs_dir = self._path("ovs")
        self.ovsdb_sock = os.path.join(self.ovs_dir, "db.sock")

    def describe(self):
        return {"ovs-netdev": "(flat, openvswitch agent on OVS userspace datapath)",
                "none": "(flat, no agent)"}[self.l2]

    def configs(self):
        return [self._path("neutron.conf"), self._path("ml2_conf.ini")]

    def start(self):
        t0 = time.monotonic()
        self.create_databases("neutron")
        self.register(["neutron"])
        self._write_configs()
        args = []
        for conf in self.configs():
            args += ["--config-file", conf]
        self._run("neutron_db_upgrade", [self.python, "-c", _entry("neutron.db.migration.cli"),
                                         *args, "upgrade", "heads"])
        api = self._spawn("neutron-server", [self.python, os.path.join(os.path.dirname(__file__),
                                                                       "real_serve.py"),
                                             "neutron", str(PORTS["neutron"]), self.workdir])
        self._spawn("neutron-rpc-server", [self.python, "-c", _entry("neutron.cmd.server").replace(
            "import main", "import main_rpc as main"), *args])
        if self.l2 == "ovs-netdev":
            self._start_ovs()
            # OVS_RUNDIR: the agent also runs plain `ovs-vsctl` (no --db) when its ovsdb_connection
            # is a unix socket; without it: "unix:/var/run/openvswitch/db.sock: database
            # connection failed (No such file or directory)".
            self._spawn("neutron-openvswitch-agent", [
                self.python, "-c", _entry("neutron.cmd.agents.ovs_neutron_agent"), *args],
                env={"OVS_RUNDIR": self.ovs_dir})
        wait_http(PORTS["neutron"], "/", proc=api, what="neutron-server", timeout=180)
        self.timings["api_up"] = round(time.monotonic() - t0, 2)
        if self.l2 == "ovs-netdev":
            self._wait_agent()
        self.timings["total"] = round(time.monotonic() - t0, 2)
        return self

    def _ovs(self, *args):
        res = subprocess.run(["ovs-vsctl", f"--db=unix:{self.ovsdb_sock}", "--timeout=20", *args],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise TierError(f"ovs-vsctl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def _start_ovs(self):
        """A private ovsdb-server + ovs-vswitchd (own db, sockets, pid files): userspace datapath."""
        t0 = time.monotonic()
        os.makedirs(self.ovs_dir, exist_ok=True)
        db = os.path.join(self.ovs_dir, "conf.db")
        subprocess.run(["ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema"],
                       check=True, capture_output=True)
        env = {"OVS_RUNDIR": self.ovs_dir, "OVS_LOGDIR": self.ovs_dir, "OVS_DBDIR": self.ovs_dir}
        self._spawn("ovsdb-server", ["ovsdb-server", db, f"--remote=punix:{self.ovsdb_sock}",
                                     "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                                     f"--pidfile={self.ovs_dir}/ovsdb-server.pid",
                                     f"--unixctl={self.ovs_dir}/ovsdb-server.ctl"], env=env)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.ovsdb_sock):
            self.check_alive()
            if time.monotonic() > deadline:
                raise TierError("ovsdb-server did not start:\n" + self.log_tail("ovsdb-server"))
            time.sleep(0.1)
        self._ovs("--no-wait", "init")
        self._spawn("ovs-vswitchd", ["ovs-vswitchd", f"unix:{self.ovsdb_sock}",
                                     f"--pidfile={self.ovs_dir}/ovs-vswitchd.pid",
                                     f"--unixctl={self.ovs_dir}/ovs-vswitchd.ctl"], env=env)
        # br-int in userspace; the agent makes its own bridges with the datapath type it is told.
        for bridge in (OVS_BRIDGE, f"br-{PHYSNET}"):
            self._ovs("--may-exist", "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev")
        self.timings["ovs"] = round(time.monotonic() - t0, 2)

    def _wait_agent(self, timeout=180):
        import openstack

        t0 = time.monotonic()
        conn = openstack.connect(**self.tier.auth)
        try:
            while True:
                self.check_alive()
                # The agent's main thread can die and the process linger, its last report alive.
                if "Agent main thread died" in self.log_tail("neutron-openvswitch-agent", 500000):
                    raise TierError("neutron-openvswitch-agent failed:\n"
                                    + self.log_tail("neutron-openvswitch-agent"))
                agents = [a for a in conn.network.agents() if a.binary == "neutron-openvswitch-agent"]
                if agents and agents[0].is_alive:
                    break
                if time.monotonic() - t0 > timeout:
                    raise TierError(f"neutron-openvswitch-agent not alive after {timeout}s:\n"
                                    + self.log_tail("neutron-openvswitch-agent"))
                time.sleep(1)
        finally:
            conn.close()
        self.timings["agent_alive"] = round(time.monotonic() - t0, 2)

    def make_port(self, conn, name):
        """A flat network + subnet + port, as admin: the server boots on the port."""
        net = conn.network.find_network(NETWORK) or conn.network.create_network(
            name=NETWORK, provider_network_type="flat", provider_physical_network=PHYSNET)
        if not list(conn.network.subnets(network_id=net.id)):
            conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.251.0.0/24",
                                       name=NETWORK + "-v4", enable_dhcp=False)
        return conn.network.create_port(network_id=net.id, name=name)

    def _write_configs(self):
        shutil.copy(os.path.join(os.path.dirname(self.python), "..", "etc", "neutron", "api-paste.ini"),
                    self._path("api-paste.ini"))
        privsep = f"{os.path.dirname(self.python)}/privsep-helper " + " ".join(
            f"--config-file {c}" for c in self.configs())
        self._write("neutron.conf", f"""
            [DEFAULT]
            use_stderr = true
            core_plugin = ml2
            service_plugins =
            auth_strategy = keystone
            transport_url = {self.tier.transport_url}
            host = {COMPUTE_HOST}
            state_path = {self._path('state')}
            api_paste_config = {self._path('api-paste.ini')}
            rpc_workers = 1
            rpc_state_report_workers = 0
            graceful_shutdown_timeout = 5
            notify_nova_on_port_status_changes = true
            notify_nova_on_port_data_changes = true
            [database]
            connection = {self.tier._db_url('neutron')}
            [oslo_concurrency]
            lock_path = {self._path('locks')}
            [oslo_messaging_notifications]
            driver = noop
            [agent]
            root_helper =
            root_helper_daemon =
            use_helper_for_ns_read = false
            """ + "".join(f"[{sec}]\nhelper_command = {privsep}\n" for sec in PRIVSEP_SECTIONS)
            + self.authtoken("neutron") + self.keystone_section("nova", "neutron")
            + "endpoint_type = public\n")
        self._write("ml2_conf.ini", f"""
            [ml2]
            type_drivers = flat
            tenant_network_types =
            mechanism_drivers = openvswitch
            extension_drivers = port_security
            [ml2_type_flat]
            flat_networks = {PHYSNET}
            [securitygroup]
            firewall_driver = noop
            [ovs]
            ovsdb_connection = unix:{self.ovsdb_sock}
            datapath_type = netdev
            integration_bridge = {OVS_BRIDGE}
            of_listen_port = {OF_LISTEN_PORT}
            bridge_mappings = {PHYSNET}:br-{PHYSNET}
            [agent]
            tunnel_types =
            """)
        self.region = REGION
        self.url = f"http://{HOST}:{PORTS['neutron']}"

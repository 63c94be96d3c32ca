"""A private RabbitMQ broker for one cloud tier (Debian's rabbitmq-server, run as a plain child).

Everything of it is the tier's own: node name, AMQP / Erlang-distribution / epmd ports (from
BAYCTL_CLOUD_PORT_BASE, so two tiers on one machine never meet), mnesia, logs, cookie (HOME) and
config under WORKDIR/rabbitmq. The system-wide rabbitmq service and the default epmd (4369) are
never used: epmd is started here in the foreground on the tier's port and ERL_EPMD_PORT points the
node at it, so `stop()` ends both and leaves no beam/epmd behind.

The vhost and user are made by the broker itself at its first boot (default_vhost/default_user in
rabbitmq.conf, mode 0600): no rabbitmqctl round trips (each is a second Erlang VM start-up). The
random password is in `transport_url` only; it is never printed or logged.

    broker = Broker(workdir, amqp_port, dist_port, epmd_port); broker.spawn(); ...; broker.wait_ready()
    broker.transport_url -> "rabbit://bayctl:<password>@127.0.0.1:<port>/bayctl"
"""

import os
import secrets
import signal
import socket
import subprocess
import time

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = "/usr/bin/epmd"
HOST = "127.0.0.1"
VHOST = "bayctl"
USER = "bayctl"
# AMQP 0-9-1 protocol header; a ready broker answers it with a Connection.Start method frame.
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def unblock_signals():
    """preexec_fn: a child must not inherit a parent's blocked SIGTERM (cloudtier.dev blocks it to
    sigwait), or it would ignore stop()'s SIGTERM."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


class BrokerError(RuntimeError):
    pass


def installed():
    return os.access(SERVER, os.X_OK) and os.access(EPMD, os.X_OK)


class Broker:
    def __init__(self, workdir, amqp_port, dist_port, epmd_port):
        self.dir = os.path.join(workdir, "rabbitmq")
        self.amqp_port, self.dist_port, self.epmd_port = amqp_port, dist_port, epmd_port
        self.nodename = f"bayctl{amqp_port}@localhost"
        self._password = secrets.token_urlsafe(24)  # url-safe: goes into transport_url as is
        self.procs = {}

    @property
    def transport_url(self):
        """oslo.messaging's URL for this broker (holds the password: never print it)."""
        return f"rabbit://{USER}:{self._password}@{HOST}:{self.amqp_port}/{VHOST}"

    def _file(self, name, text, mode=0o600):
        path = os.path.join(self.dir, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as f:
            f.write(text)
        return path

    def _env(self):
        conf = self._file("rabbitmq.conf", "\n".join([
            f"listeners.tcp.default = {HOST}:{self.amqp_port}",
            f"default_vhost = {VHOST}",
            f"default_user = {USER}",
            f"default_pass = {self._password}",
            "default_permissions.configure = .*",
            "default_permissions.read = .*",
            "default_permissions.write = .*",
            "loopback_users = none",
            # A test tier: no disk alarm stopping publishers on a nearly full CI disk.
            "disk_free_limit.absolute = 1MB",
            "log.console = false",
            "log.file.level = warning",
            ""]))
        return {
            "HOME": self.dir,  # its .erlang.cookie lives here, not in root's or rabbitmq's home
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": HOST,
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            # Erlang distribution listens on every address unless told: loopback only.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CONFIG_FILE": conf,
            "RABBITMQ_CONF_ENV_FILE": self._file("rabbitmq-env.conf", ""),  # not /etc/rabbitmq's
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(self.dir, "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": self._file("enabled_plugins", "[].\n"),
            "RABBITMQ_FEATURE_FLAGS_FILE": os.path.join(self.dir, "feature_flags"),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.dir, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.dir, "log"),
            "RABBITMQ_PID_FILE": os.path.join(self.dir, "rabbit.pid"),
            "RABBITMQ_ALLOW_INPUT": "",
        }

    def spawn(self):
        """Start epmd and the node; returns at once (`wait_ready` waits): the tier starts
        MariaDB meanwhile."""
        if not installed():
            raise BrokerError("rabbitmq-server is not installed (tools/setup.d/50-cloud.sh installs it)")
        os.makedirs(os.path.join(self.dir, "log"), exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(self._env())
        log = open(os.path.join(self.dir, "console.log"), "ab")
        self.procs["epmd"] = subprocess.Popen(
            [EPMD, "-port", str(self.epmd_port), "-address", HOST], stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, preexec_fn=unblock_signals)
        self.procs["rabbitmq"] = subprocess.Popen(
            [SERVER], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            cwd=self.dir, start_new_session=True, preexec_fn=unblock_signals)

    def wait_ready(self, timeout=120.0):
        """Until the AMQP listener answers the protocol header (it opens after the default
        vhost and user exist)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise BrokerError(f"{name} exited with {proc.returncode} while starting:\n"
                                      + self.log_tail())
            try:
                with socket.create_connection((HOST, self.amqp_port), timeout=3) as s:
                    s.sendall(_AMQP_HEADER)
                    if s.recv(1)[:1] == b"\x01":  # frame type 1: a method frame (Connection.Start)
                        return
                    last = "no Connection.Start"
            except OSError as e:
                last = e
            time.sleep(0.2)
        raise BrokerError(f"rabbitmq not ready on {HOST}:{self.amqp_port} after {timeout:.0f}s: {last}\n"
                          + self.log_tail())

    def log_tail(self, chars=3000):
        text = ""
        for rel in ("console.log", os.path.join("log", f"{self.nodename}.log")):
            try:
                with open(os.path.join(self.dir, rel), errors="replace") as f:
                    text += f.read()[-chars:]
            except OSError:
                pass
        return text.replace(self._password, "***")

    def stop(self):
        """SIGTERM the node's process group (RabbitMQ shuts down cleanly on it), then epmd."""
        for name in ("rabbitmq", "epmd"):
            proc = self.procs.get(name)
            if proc is None:
                continue
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # beam's helpers (erl_child_setup, inet_gethost) are in the same group: make sure.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs.clear()

"""The local provider: a bay on this one machine, the default when no cloud is configured.

A master and N slaves are network namespaces on a bridge (see local_net.py for the
addresses), each running its own sshd; every slave also runs its own node agent (own socket,
bpffs pin dir and state dir). The create pipeline reaches them exactly as it reaches a cloud
bay: over SSH, the slaves through the master as bastion, so seeding and verification take
the same code path. Mesos itself does not run here (its binaries are packaged nowhere we
can install from): the local bay is for the network side — policy, agents, plugins,
seeding, verification — on a laptop or in CI.

Everything the bay makes carries the prefix bb-<bay>- (namespaces, pin dirs) or
bb-<short> (bridge and veths), and `delete` finds it by that prefix and by namespace, so a
bay interrupted half-way is removed as completely as a whole one.
"""

import json
import os
import time
from typing import Optional

from bayctl import atomicfile
from bayctl.errors import CloudError, NodeError
from bayctl.model import MASTER, SLAVE, BayRequest, BayStatus, Node, Progress
from bayctl.providers import local_net, local_nodes
from bayctl.providers.base import Provider, ProviderInfo

RECORD = "local.json"
READY_TIMEOUT = 60.0


class LocalProvider(Provider):
    name = "local"
    info = ProviderInfo(
        needs_cloud=False, needs_image=False,  # nodes are namespaces on this machine
        default_ssh_user="root",
        agent_wait_timeout=60.0,  # the agents are up once wait() returns: one round of checks
        installs_login_key=True,  # it writes the nodes' authorized_keys itself
        refused_key_is_final=True,  # the key was installed before sshd started
        runs_own_zookeeper=True,  # Debian's ZooKeeper on the master namespace (bayctl.distribution)
    )

    def __init__(self, state_root: str):
        """`state_root`: the directory of one subdirectory per bay (bayctl.create.state's)."""
        self.state_root = state_root

    # -- the record of what this provider made for a bay ------------------------------------

    def _dir(self, bay: str) -> str:
        return os.path.join(self.state_root, bay)

    def _load(self, bay: str) -> Optional[dict]:
        try:
            with open(os.path.join(self._dir(bay), RECORD)) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise NodeError(f"{os.path.join(self._dir(bay), RECORD)}: unreadable: {err}") from None

    def _save(self, bay: str, record: dict) -> None:
        os.makedirs(self._dir(bay), mode=0o700, exist_ok=True)  # 0700: it holds the bay's keys
        atomicfile.write_atomically(os.path.join(self._dir(bay), RECORD), json.dumps(record, indent=1) + "\n",
                                    0o600)

    def _records(self):
        try:
            names = sorted(os.listdir(self.state_root))
        except FileNotFoundError:
            return []
        return [(name, record) for name in names if (record := self._load(name)) is not None]

    # -- Provider ---------------------------------------------------------------------------

    def check(self, bay: str) -> None:
        """Pre-flight, before anything is made: root, the tools, and a name whose prefix no
        other local bay's namespaces share (delete finds a bay's objects by that prefix)."""
        if os.geteuid() != 0:
            raise CloudError("the local bay needs root (network namespaces, bpffs, tc): run as root")
        for tool in ("ip", "nsenter", "setsid", "ssh-keygen", local_nodes.SSHD):
            if not any(os.access(os.path.join(d, tool), os.X_OK) for d in ["", *os.get_exec_path()]):
                raise CloudError(f"the local bay needs `{os.path.basename(tool)}` "
                                 "(tools/setup-dev installs it)")
        if self._load(bay) is None and (local_net.bay_namespaces(bay) or
                                        local_net.link_exists(local_net.bridge_name(bay))):
            # Objects of a bay this state dir does not know (a killed run, another BAYCTL_STATE_DIR):
            # building on them would mix two bays. They are found by name and removed by delete.
            raise CloudError(f"namespaces or links of a local bay {bay!r} exist but no record of it does: "
                             f"`bayctl delete bay {bay}` removes them")
        for other, _ in self._records():
            if other != bay and (other.startswith(bay + "-") or bay.startswith(other + "-")):
                raise CloudError(f"bay name {bay!r} and local bay {other!r} would share the namespace "
                                 f"prefix {local_net.PREFIX}{min(bay, other, key=len)}-: choose another name")

    def create(self, request: BayRequest) -> str:
        bay = request.name
        self.check(bay)
        record = self._load(bay)
        if record is None:
            taken = [other["index"] for _, other in self._records()]
            record = {"name": bay, "index": local_net.pick_index(taken), "slaves": request.slaves}
            # Saved before anything exists, so `delete` knows the bay even if we stop right here.
            self._save(bay, record)
        elif record["slaves"] != request.slaves:
            raise CloudError(f"local bay {bay} has {record['slaves']} slaves; delete it to change that")
        public_key = request.ssh_public_key
        if not public_key:
            raise CloudError("the local provider needs the bay's SSH public key (BayRequest.ssh_public_key)")
        addressing = local_net.Addressing(record["index"])
        authorized_keys = os.path.join(self._dir(bay), "authorized_keys")
        with open(authorized_keys, "w") as handle:
            handle.write(public_key.strip() + "\n")
        os.chmod(authorized_keys, 0o600)

        local_net.ensure_bridge(bay, addressing)
        for node, address, role in self._layout(record, addressing):
            local_net.ensure_node(bay, node, address, addressing)
            local_net.ensure_routes(bay, node, addressing, record["slaves"])
            files = local_nodes.NodeFiles(bay, node, self._dir(bay))
            local_nodes.ensure_host_key(files)
            local_nodes.write_sshd_config(files, address, authorized_keys, forwarding=role == MASTER)
            local_nodes.ensure_sshd(files)
            if role == SLAVE:
                local_nodes.ensure_agent(files)
            elif self.has_zookeeper():
                self.zookeeper(bay).start()  # the bay's ZooKeeper, on its master as on a cloud
        return bay

    def wait(self, ref, progress=None, timeout=None, action="CREATE") -> BayStatus:
        """Until every node's sshd accepts connections and every slave's agent answers."""
        record = self._require(ref)
        addressing = local_net.Addressing(record["index"])
        checks = []
        for node, address, role in self._layout(record, addressing):
            files = local_nodes.NodeFiles(ref, node, self._dir(ref))
            checks.append((f"{node} sshd", lambda a=address: local_nodes.port_open(a, 22)))
            if role == SLAVE:
                checks.append((f"{node} agent", lambda f=files: _agent_ready(f)))
            elif self.has_zookeeper():
                checks.append((f"{node} zookeeper", self.zookeeper(ref).healthy))
        deadline = time.monotonic() + (timeout or READY_TIMEOUT)
        done = set()
        while True:
            for label, ready in checks:
                if label not in done and ready():
                    done.add(label)
                    if progress:
                        progress(Progress(f"{label} ready", len(done), len(checks), "CREATE_IN_PROGRESS"))
            if len(done) == len(checks):
                return BayStatus(ref, ref, "CREATE_COMPLETE", self.name)
            if time.monotonic() > deadline:
                missing = [label for label, _ in checks if label not in done]
                raise CloudError(f"local bay {ref}: not ready after {timeout or READY_TIMEOUT:g}s: "
                                 f"{', '.join(missing)} (logs in {self._dir(ref)}/nodes/)")
            time.sleep(0.1)

    def nodes(self, ref) -> list:
        record = self._require(ref)
        addressing = local_net.Addressing(record["index"])
        nodes = []
        for node, address, role in self._layout(record, addressing):
            # Slaves have no public address, as on a cloud: they are reached through the master.
            nodes.append(Node(name=node, role=role, public_ip=address if role == MASTER else None,
                              private_ip=address))
        return nodes

    def delete(self, ref, wait=True, progress=None, timeout=None) -> None:
        """Remove everything of the bay: processes, namespaces, links, pins, sockets, record."""
        bay = ref
        namespaces = local_net.bay_namespaces(bay)
        pids = []
        for name in namespaces:
            pids += local_net.processes_in(os.path.join(local_net.NETNS_DIR, name))
        local_nodes.stop_all(pids)
        if progress:
            progress(Progress(f"stopped {len(pids)} processes", 1, 4, "DELETE_IN_PROGRESS"))
        for name in namespaces:
            local_net.delete_namespace(name)
        local_net.delete_link(local_net.bridge_name(bay))
        for name in _leftover_links(bay):
            local_net.delete_link(name)
        if progress:
            progress(Progress(f"removed {len(namespaces)} namespaces and the bridge", 2, 4,
                              "DELETE_IN_PROGRESS"))
        from bayctl.node.agent_process import remove_tree

        prefix = f"{local_net.PREFIX}{bay}-"
        for name in _listdir(local_nodes.BPFFS):
            if name.startswith(prefix):
                remove_tree(os.path.join(local_nodes.BPFFS, name))
        remove_tree(local_nodes.socket_dir(bay))
        if progress:
            progress(Progress("removed pinned maps and sockets", 3, 4, "DELETE_IN_PROGRESS"))
        try:
            os.unlink(os.path.join(self._dir(bay), RECORD))
        except FileNotFoundError:
            pass
        if progress:
            progress(Progress("done", 4, 4, "DELETE_COMPLETE"))

    def list(self) -> list:
        bays = []
        for name, record in self._records():
            namespaces = local_net.bay_namespaces(name)
            expected = record["slaves"] + 1
            nodes = sum(1 for n in namespaces if n == local_net.netns_name(name, "master")
                        or n.startswith(local_net.netns_name(name, "slave")))
            status = "CREATE_COMPLETE" if nodes >= expected else f"INCOMPLETE ({nodes}/{expected} nodes)"
            bays.append(BayStatus(name, name, status, self.name))
        return bays

    # -- local facts other steps use ---------------------------------------------------------

    def host_keys(self, ref: str) -> dict:
        """address -> the node's host public key: this provider made them, so the first SSH
        contact is checked against them instead of trusted."""
        record = self._require(ref)
        keys = {}
        for node, address, _ in self._layout(record, local_net.Addressing(record["index"])):
            keys[address] = local_nodes.ensure_host_key(self.node_files(ref, node))
        return keys

    def container_subnets(self, ref: str, nodes=None, request=None) -> dict:
        """slave name -> the subnet its containers get (routed to it by every other node)."""
        record = self._require(ref)
        addressing = local_net.Addressing(record["index"])
        return {f"slave{i}": addressing.container_subnet(i) for i in range(record["slaves"])}

    def zookeeper(self, bay: str):
        """The bay's ZooKeeper (Debian's package): in the master's namespace, on its address,
        data under the master's node dir. Its process is the master namespace's, so delete
        stops it with the rest."""
        from bayctl.providers.local_zookeeper import ZooKeeperServer

        files = self.node_files(bay, "master")
        return ZooKeeperServer(os.path.join(files.dir, "zookeeper"), address=self.addressing(bay).master,
                               netns=files.netns)

    @staticmethod
    def has_zookeeper() -> bool:
        """Debian's zookeeper package is here: without it a local bay seeds over SSH only."""
        from bayctl.providers.local_zookeeper import ZOOKEEPER_JAR

        return os.path.exists(ZOOKEEPER_JAR)

    def zookeeper_hosts(self, ref: str) -> Optional[str]:
        """host:port of the bay's ZooKeeper, for bayctl (this machine reaches the bridge) and
        agents; None where this machine has no ZooKeeper to run."""
        return self.zookeeper(ref).hosts if self.has_zookeeper() else None

    def ref_of(self, name: str, recorded: Optional[str]) -> str:
        """A local bay's reference is its name: delete finds its objects by name, record or not."""
        return recorded or name

    def remove_leftovers(self, name: str) -> bool:
        """Namespaces, links, pins and sockets of a bay named `name` (found by name)."""
        if not local_net.bay_namespaces(name) and not os.path.exists(os.path.join(self._dir(name), RECORD)):
            return False
        self.delete(name)
        return True

    def node_files(self, bay: str, node: str) -> local_nodes.NodeFiles:
        return local_nodes.NodeFiles(bay, node, self._dir(bay))

    def addressing(self, bay: str) -> local_net.Addressing:
        return local_net.Addressing(self._require(bay)["index"])

    def _require(self, bay: str) -> dict:
        record = self._load(bay)
        if record is None:
            raise CloudError(f"no local bay {bay}")
        return record

    @staticmethod
    def _layout(record, addressing):
        yield "master", addressing.master, MASTER
        for i in range(record["slaves"]):
            yield f"slave{i}", addressing.slave(i), SLAVE


def _agent_ready(files) -> bool:
    """The slave's agent answers; an agent that is not even running any more fails the wait
    at once with its log's last lines (instead of waiting out the bay's whole timeout)."""
    if _agent_healthy(files.agent_socket):
        return True
    if local_nodes.find_process(files, "bayctl.node.agent", files.agent_socket) is None:
        raise CloudError(f"the agent of {files.node} exited: {local_nodes.tail(files.agent_log)} "
                         f"(log: {files.agent_log})")
    return False


def _agent_healthy(socket_path: str) -> bool:
    from bayctl.node.client import AgentClient

    try:
        return bool(AgentClient(socket_path, timeout=2).health())
    except NodeError:
        return False


def _leftover_links(bay: str):
    prefix = local_net.bridge_name(bay) + "-"
    out = local_net.run(["ip", "-o", "link", "show"], check=False)
    names = []
    for line in out.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(prefix):
                names.append(name)
    return names


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []

"""Real servers behind the Nova emulator: one qemu VM per server, booted as Nova boots it.

When the Nova emulator has a `QemuLauncher`, a server it accepts becomes a VM:
- the image is fetched from the REAL Glance (GET /v2/images/{id}/file with the caller's
  token, as nova-compute does) once per image, and each server boots a qcow2 overlay of it;
- its user data, key and name reach it on a config drive as Nova writes one: ISO 9660 with
  Rock Ridge + Joliet, volume label `config-2`, `openstack/latest/{meta_data.json,
  user_data, network_data.json}` (genisoimage, the tool nova-compute runs);
- software emulation (`-accel tcg`: /dev/kvm does not work on these machines);
- its way to Heat, for its wait-condition signal: a user-mode NIC with `restrict=on` (no
  packet leaves the machine) whose only opening is `guestfwd` from 10.0.2.100:<heat port>
  in the guest to 127.0.0.1:<heat port> on the host (and the same for heat-api-cfn's port, when
  the launcher has it: os-collect-config's metadata and deployment signals), through `socat`
  spawned per connection
  (`guestfwd=...-cmd:`; a `-tcp:` target is ONE chardev connection made when qemu starts,
  refused if Heat is not listening yet and useless after the first request). Heat renders
  that address into the signal URL through its `[clients_heat] url` (cloudtier/tier.py), as
  an operator sets it when servers cannot reach the catalog's endpoint.
The server is ACTIVE once qemu runs (as libvirt reports a started domain), ERROR with a
fault when the image cannot be fetched or qemu exits; DELETE kills the VM and its disks.
"""

import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import requests

HEAT_GUEST_ADDRESS = "10.0.2.100"  # where a guest reaches Heat (qemu user-net guestfwd)
USER_NET_GUEST_ADDRESS = "10.0.2.15"  # qemu user-net's first guest address
CONFIG_DRIVE_LABEL = "config-2"


class LaunchError(RuntimeError):
    pass


def config_drive_files(server_id, name, user_data, public_keys, network_data, project_id, meta=None):
    """{path on the drive: bytes} as nova-compute writes the OpenStack metadata (latest only)."""
    keys = [{"name": key_name, "type": "ssh", "data": key} for key_name, key in public_keys.items()]
    meta_data = {"uuid": server_id, "name": name, "hostname": name, "launch_index": 0,
                 "availability_zone": "nova", "project_id": project_id, "meta": meta or {},
                 "public_keys": dict(public_keys), "keys": keys, "devices": []}
    files = {"openstack/latest/meta_data.json": json.dumps(meta_data).encode(),
             "openstack/latest/network_data.json": json.dumps(network_data).encode(),
             "openstack/latest/vendor_data.json": b"{}", "openstack/latest/vendor_data2.json": b"{}"}
    if user_data is not None:
        files["openstack/latest/user_data"] = user_data
    return files


def make_config_drive(path, files):
    """Write `files` into an ISO 9660 image labelled config-2 (genisoimage, as Nova does)."""
    tree = path + ".d"
    shutil.rmtree(tree, ignore_errors=True)
    for rel, data in files.items():
        os.makedirs(os.path.dirname(os.path.join(tree, rel)), exist_ok=True)
        with open(os.path.join(tree, rel), "wb") as f:
            f.write(data)
    res = subprocess.run(["genisoimage", "-o", path, "-ldots", "-allow-lowercase", "-allow-multidot",
                          "-l", "-publisher", "bayctl nova emulator", "-quiet", "-J", "-r",
                          "-V", CONFIG_DRIVE_LABEL, tree], capture_output=True, text=True)
    shutil.rmtree(tree, ignore_errors=True)
    if res.returncode != 0:
        raise LaunchError(f"genisoimage failed: {res.stderr.strip()[-500:]}")


def network_data(ports, heat_mac):
    """network_data.json as Nova writes it from the server's Neutron ports (static addresses,
    the subnet's gateway as default route, its DNS servers), then the user-mode NIC towards
    Heat: a static address and no gateway (nothing lies beyond it but the forward)."""
    links, networks, dns = [], [], []
    for index, nic in enumerate(ports):
        cidr = ipaddress.ip_network(nic["cidr"])
        links.append({"id": f"tap{index}", "type": "tap", "ethernet_mac_address": nic["mac"], "mtu": 1500,
                      "vif_id": nic["port_id"]})
        routes = [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": nic["gateway"]}] \
            if nic.get("gateway") and index == 0 else []
        networks.append({"id": f"network{index}", "type": "ipv4", "link": f"tap{index}",
                         "network_id": nic["network_id"], "ip_address": nic["ip"],
                         "netmask": str(cidr.netmask), "routes": routes})
        dns += [d for d in nic.get("dns", []) if d not in dns]
    links.append({"id": "heatnet", "type": "phy", "ethernet_mac_address": heat_mac, "mtu": 1500})
    networks.append({"id": "heatnet0", "type": "ipv4", "link": "heatnet", "network_id": "heatnet",
                     "ip_address": USER_NET_GUEST_ADDRESS, "netmask": "255.255.255.0", "routes": []})
    return {"links": links, "networks": networks,
            "services": [{"type": "dns", "address": d} for d in dns]}


def mac_for(server_id, index):
    digest = hashlib.sha256(f"{server_id}/{index}".encode()).digest()
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])  # Neutron's default prefix


class VM:
    """One server's qemu process and files."""

    def __init__(self, directory):
        self.directory = directory
        self.proc = None
        self.fault = None  # message when the build failed
        self.started = None  # monotonic time qemu was started
        self.ready = threading.Event()  # set once launched or failed
        self.ports = []  # the bound ports, each with the tap it got

    @property
    def console_log(self):
        return os.path.join(self.directory, "console.log")

    @property
    def status(self):
        if self.fault is not None:
            return "ERROR"
        if not self.ready.is_set():
            return "BUILD"
        if self.proc.poll() is not None:
            self.fault = f"qemu exited with {self.proc.returncode}: {self.tail('qemu.log', 400)}"
            return "ERROR"
        return "ACTIVE"

    def tail(self, name, chars=2000):
        try:
            with open(os.path.join(self.directory, name), errors="replace") as f:
                return f.read()[-chars:]
        except OSError:
            return ""

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class QemuLauncher:
    """Boots the Nova emulator's servers as qemu VMs under `workdir` (see the module doc)."""

    def __init__(self, workdir, heat_port, memory_mb=448, cpus=1, keep_consoles=None, fabric=None,
                 cfn_port=None):
        self.workdir = workdir
        self.fabric = fabric  # emulators/fabric.py: ports are taps in its namespace, qemu runs there
        self.heat_port = heat_port
        self.cfn_port = cfn_port  # heat-api-cfn, forwarded like Heat's API (POLL_SERVER_CFN servers)
        self.memory_mb, self.cpus = memory_mb, cpus
        self.keep_consoles = keep_consoles  # a folder the consoles are copied to on delete
        self.vms = {}  # server id -> VM
        self._image_lock = threading.Lock()
        os.makedirs(os.path.join(workdir, "images"), exist_ok=True)

    # -- images ------------------------------------------------------------------------
    def _fetch_image(self, glance_url, token, image_id):
        """The image's bytes from Glance, once per image (nova-compute's image cache)."""
        path = os.path.join(self.workdir, "images", image_id)
        with self._image_lock:
            if os.path.exists(path):
                return path
            headers = {"X-Auth-Token": token}
            meta = requests.get(f"{glance_url}/v2/images/{image_id}", headers=headers, timeout=30)
            meta.raise_for_status()
            disk_format = meta.json().get("disk_format")
            if disk_format not in ("qcow2", "raw"):
                raise LaunchError(f"image {image_id} has disk_format {disk_format!r}: not bootable here")
            partial = path + ".part"
            with requests.get(f"{glance_url}/v2/images/{image_id}/file", headers=headers, stream=True,
                              timeout=60) as resp:
                resp.raise_for_status()
                with open(partial, "wb") as out:
                    for chunk in resp.iter_content(1 << 20):
                        out.write(chunk)
            with open(path + ".format", "w") as f:
                f.write(disk_format)
            os.rename(partial, path)
            return path

    # -- servers -----------------------------------------------------------------------
    def launch(self, server_id, name, *, glance_url, token, image_id, user_data, public_keys, project_id,
               memory_mb=None, ports=()):
        """Start building the server in the background; returns its VM (status BUILD).
        `ports`: the bound Neutron ports, each {port_id, network_id, mac, ip, cidr, gateway, dns}."""
        if ports and self.fabric is None:
            raise LaunchError("servers with ports need the fabric (their taps live in its namespace)")
        vm = VM(os.path.join(self.workdir, "servers", server_id))
        vm.ports = [dict(p) for p in ports]
        self.vms[server_id] = vm
        os.makedirs(vm.directory)

        def build():
            try:
                base = self._fetch_image(glance_url, token, image_id)
                with open(base + ".format") as f:
                    base_format = f.read().strip()
                overlay = os.path.join(vm.directory, "disk.qcow2")
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", base_format,
                                overlay], check=True, capture_output=True)
                mac = mac_for(server_id, len(vm.ports))
                drive = os.path.join(vm.directory, "config.iso")
                make_config_drive(drive, config_drive_files(server_id, name, user_data, public_keys,
                                                            network_data(vm.ports, mac), project_id))
                for port in vm.ports:
                    port["tap"] = self.fabric.plug({"id": port["port_id"], "network_id": port["network_id"]})
                vm.proc = self._start_qemu(vm, overlay, drive, mac, memory_mb or self.memory_mb)
                vm.started = time.monotonic()
            except Exception as e:  # the server's fault, as Nova records a failed build
                vm.fault = f"{type(e).__name__}: {e}"
            finally:
                vm.ready.set()

        threading.Thread(target=build, name=f"build-{server_id[:8]}", daemon=True).start()
        return vm

    def qemu_argv(self, overlay, drive, mac, memory_mb, console, ports=()):
        forwards = []
        for port in (self.heat_port, self.cfn_port):
            if port is None:
                continue
            relay = f"socat - TCP:127.0.0.1:{port}"
            if self.fabric is not None:  # qemu runs in the namespace: the relay goes back to the host's
                relay = f"nsenter --net={self.fabric.host_netns} {relay}"
            forwards.append(f"guestfwd=tcp:{HEAT_GUEST_ADDRESS}:{port}-cmd:{relay}")
        forward = ",".join(forwards)
        nics = []
        for index, port in enumerate(ports):  # the ports first: the guest's first NIC is the bay's
            nics += ["-netdev", f"tap,id=port{index},ifname={port['tap']},script=no,downscript=no",
                     "-device", f"virtio-net-pci,netdev=port{index},mac={port['mac']}"]
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-m", str(memory_mb), "-smp", str(self.cpus),
                "-display", "none", "-monitor", "none", "-serial", f"file:{console}",
                "-drive", f"file={overlay},if=virtio,format=qcow2",
                "-drive", f"file={drive},if=virtio,format=raw,readonly=on", *nics,
                "-netdev", f"user,id=heatnet,restrict=on,{forward}",
                "-device", f"virtio-net-pci,netdev=heatnet,mac={mac}"]
        return self.fabric.ns_argv(argv) if self.fabric is not None else argv

    def _start_qemu(self, vm, overlay, drive, mac, memory_mb):
        argv = self.qemu_argv(overlay, drive, mac, memory_mb, vm.console_log, vm.ports)
        log = open(os.path.join(vm.directory, "qemu.log"), "wb")
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def delete(self, server_id):
        vm = self.vms.pop(server_id, None)
        if vm is None:
            return
        vm.ready.wait(timeout=600)
        vm.kill()
        for port in vm.ports:
            if self.fabric is not None:
                self.fabric.unplug(port["port_id"])
        if self.keep_consoles and os.path.exists(vm.console_log):
            os.makedirs(self.keep_consoles, exist_ok=True)
            shutil.copy(vm.console_log, os.path.join(self.keep_consoles, f"{server_id}.console.log"))
        shutil.rmtree(vm.directory, ignore_errors=True)

    def close(self):
        for server_id in list(self.vms):
            self.delete(server_id)
        shutil.rmtree(self.workdir, ignore_errors=True)

"""Boot one server through the REAL Nova (nova_real.py) and read what its guest printed.

The image is bootsector.py's 1 MiB disk, uploaded to the tier's real Glance; nova-compute
fetches it, libvirt starts qemu (TCG), the boot sector writes MARKER to the serial console, and
Nova's console-output API returns it. `boot()` returns the server's status and whether the
console held the marker; a server in ERROR raises with Nova's fault message.
"""

import tempfile
import time

from harness.cloudtier import bootsector

IMAGE = "rnv-bootsector"
FLAVOR = "rnv-tiny"


class BootError(RuntimeError):
    pass


class Booter:
    def __init__(self, tier):
        import openstack

        self.conn = openstack.connect(**tier.auth)
        self.servers = []
        self.image = self.conn.image.find_image(IMAGE, ignore_missing=True)
        if self.image is None:
            with tempfile.NamedTemporaryFile(suffix=".raw") as f:
                f.write(bootsector.image_bytes())
                f.flush()
                self.image = self.conn.create_image(IMAGE, filename=f.name, disk_format="raw",
                                                    container_format="bare", wait=True)
        self.flavor = self.conn.compute.find_flavor(FLAVOR, ignore_missing=True) or \
            self.conn.compute.create_flavor(name=FLAVOR, ram=64, vcpus=1, disk=1)

    def boot(self, name, port_id, timeout=300):
        """Create a server (on `port_id`, or with networks=none), wait ACTIVE, then until its
        console log holds the marker. Returns {"status", "console_marker", "seconds"...}."""
        t0 = time.monotonic()
        networks = [{"port": port_id}] if port_id else "none"
        # networks=none needs compute API microversion >= 2.37
        self.conn.compute.default_microversion = "2.37"
        server = self.conn.compute.create_server(name=name, image_id=self.image.id, flavor_id=self.flavor.id,
                                                 networks=networks)
        self.servers.append(server)
        while True:
            server = self.conn.compute.get_server(server.id)
            if server.status == "ACTIVE":
                break
            if server.status == "ERROR" or time.monotonic() - t0 > timeout:
                raise BootError(f"server {name} {server.status}: fault {server.fault}")
            time.sleep(1)
        active = round(time.monotonic() - t0, 1)
        console = ""
        while bootsector.MARKER.decode() not in console and time.monotonic() - t0 < timeout:
            console = self.conn.compute.get_server_console_output(server)["output"] or ""
            time.sleep(1)
        return {"status": server.status, "host": server.compute_host, "active_after_s": active,
                "console_marker": bootsector.MARKER.decode() in console,
                "console_tail": console[-120:], "seconds": round(time.monotonic() - t0, 1)}

    def boot_on_network(self, name, neutron):
        port = neutron.make_port(self.conn, name)
        result = self.boot(name, port.id)
        port = self.conn.network.get_port(port.id)
        result.update({"port_status": port.status, "binding_vif_type": port.binding_vif_type,
                       "fixed_ips": [ip["ip_address"] for ip in port.fixed_ips]})
        return result

    def close(self):
        for server in self.servers:
            try:
                self.conn.compute.delete_server(server, ignore_missing=True)
                self.conn.compute.wait_for_delete(server, wait=120)
            except Exception as e:  # report, don't hide the boot's own result
                print(f"cleanup of server {server.name}: {e}")
        self.conn.close()

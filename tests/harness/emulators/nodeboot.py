"""Plays cloud-init for stand-in servers: runs the wait-condition notify from their user data.

There is no Nova here, so no VM boots and runs its user data. This thread does the part that
matters to Heat: for each stand-in `Bay::Server` that Heat has created, it reads the user data
Heat rendered (the OS::Heat::SoftwareConfig the server got), finds the notify command that
`OS::Heat::WaitConditionHandle`'s `curl_cli` put there, and sends what the node's script would
send (`{"status": "SUCCESS" | "FAILURE", "reason": ...}`) to Heat's signal URL with the handle's
token. The REAL OS::Heat::WaitCondition then completes or fails the stack. The URL's host is
where a guest VM reaches Heat (the tier's `[clients_heat] url`); from this host the same path
is sent to the heat endpoint of the catalog.
"""

import re
import threading
import urllib.parse

import requests

NOTIFY = re.compile(r"curl -i -X POST -H 'X-Auth-Token: (?P<token>[^']+)'.*?(?P<url>https?://\S+)")


class NodeBooter(threading.Thread):
    def __init__(self, hc, stack_ref, status="SUCCESS", reason="services are up", interval=1.0):
        super().__init__(name="nodeboot", daemon=True)
        self.hc, self.stack_ref = hc, stack_ref
        self.status, self.reason, self.interval = status, reason, interval
        self.signalled = []  # names of the servers whose notify was sent
        self.errors = []
        self._halt = threading.Event()

    def stop(self):
        self._halt.set()
        self.join(timeout=10)

    def run(self):
        done = set()
        while not self._halt.is_set():
            try:
                for res in self.hc.resources.list(self.stack_ref, nested_depth=5):
                    if res.resource_type != "Bay::Server" or res.resource_status != "CREATE_COMPLETE":
                        continue
                    if res.physical_resource_id in done:
                        continue
                    self._boot(res)
                    done.add(res.physical_resource_id)
            except Exception as e:  # the stack may be gone at the end; record, keep going
                self.errors.append(repr(e))
            self._halt.wait(self.interval)

    def _from_host(self, url):
        endpoint = urllib.parse.urlsplit(self.hc.http_client.get_endpoint())
        return urllib.parse.urlsplit(url)._replace(netloc=endpoint.netloc).geturl()

    def _boot(self, server):
        nested = self.hc.stacks.get(server.physical_resource_id)
        config_id = nested.parameters["user_data"]
        script = self.hc.software_configs.get(config_id).config
        match = NOTIFY.search(script)
        if match is None:
            raise AssertionError(f"no wait-condition notify in the user data of {server.resource_name}")
        resp = requests.post(self._from_host(match["url"]),
                             json={"status": self.status, "reason": self.reason},
                             headers={"X-Auth-Token": match["token"], "Content-Type": "application/json",
                                      "Accept": "application/json"}, timeout=30)
        resp.raise_for_status()
        self.signalled.append(nested.parameters.get("name") or server.resource_name)

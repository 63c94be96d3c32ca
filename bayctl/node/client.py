"""Client of the node agent's API (HTTP/1.1 + JSON over its unix socket).

Used by the node CLI, the Docker driver, the CNI plugin and seeding. Every failure is a
NodeError with one line: the agent's own message, or what is wrong with the socket.
"""

import http.client
import json
import socket
import time
import urllib.parse

from bayctl.errors import NodeError
from bayctl.node.protocol import SOURCE_HEADER, default_socket


class AgentError(NodeError):
    """The agent could not be asked, or refused: its reason, or what is wrong with its socket."""


class AgentTimeout(AgentError):
    """The agent took the connection but did not answer in time (hung, stopped, or swamped)."""


CONNECT_BUSY_WAIT = 10.0     # seconds to retry while the agent's listen backlog is full


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        deadline = time.monotonic() + min(self.timeout, CONNECT_BUSY_WAIT)
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.socket_path)
            except BlockingIOError:
                # EAGAIN: the agent's backlog is full (a burst of clients); it is alive, wait.
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
                continue
            except BaseException:
                sock.close()
                raise
            self.sock = sock
            return


class AgentClient:
    """One request per connection: the agent is local and cheap to reach, and a client
    never holds a server thread between calls."""

    def __init__(self, socket_path=None, timeout=120.0):
        self.socket_path = socket_path or default_socket()
        self.timeout = timeout

    # -- policy --------------------------------------------------------------------------------

    def apply_policy(self, text, source=None):
        """Apply a policy (YAML text). `source` names the file in error messages."""
        return self._put_policy("/v1/policy", text, source)

    def _put_policy(self, path, text, source):
        headers = {"Content-Type": "application/yaml"}
        if source:
            headers[SOURCE_HEADER] = source
        body = text.encode("utf-8") if isinstance(text, str) else text
        return self._request("PUT", path, body, headers)

    def show_policy(self):
        return self._request("GET", "/v1/policy")

    def clear_policy(self):
        return self._request("DELETE", "/v1/policy")

    # -- audit mode (a staged policy beside the active one) ------------------------------------

    def stage_policy(self, text, source=None):
        """Stage a policy beside the active one (audit mode)."""
        return self._put_policy("/v1/policy/staged", text, source)

    def staged(self):
        return self._request("GET", "/v1/policy/staged")

    def discard_staged(self):
        return self._request("DELETE", "/v1/policy/staged")

    def promote_staged(self, digest=None):
        """Make the staged policy active; with `digest`, only if that is what is staged."""
        headers = {"If-Match": f'"{digest}"'} if digest else {}
        return self._request("POST", "/v1/policy/staged/promote", b"", headers)

    # -- endpoints -----------------------------------------------------------------------------

    def add_endpoint(self, ip, group, ifname=None, netns=None, allow_uplink=False):
        request = {"ip": ip, "group": group}
        if ifname is not None:
            request["ifname"] = ifname
        if netns is not None:
            request["netns"] = netns
        if allow_uplink:
            request["allow_uplink"] = True
        return self._request("POST", "/v1/endpoints", json.dumps(request).encode(),
                             {"Content-Type": "application/json"})

    def remove_endpoint(self, ip):
        return self._request("DELETE", "/v1/endpoints/" + urllib.parse.quote(str(ip), safe=""))

    def endpoints(self):
        return self._request("GET", "/v1/endpoints")["endpoints"]

    # -- CNI calls the agent runs for bayctl-cni (cni_service.py) --------------------------------

    def run_cni(self, request):
        return self._request("POST", "/v1/cni", json.dumps(request).encode(),
                             {"Content-Type": "application/json"})

    # -- observation ---------------------------------------------------------------------------

    def stats(self):
        return self._request("GET", "/v1/stats")

    def distribution(self):
        """How this agent watches the bay's ZooKeeper ({"hosts": None}: it does not); no secret."""
        return self._request("GET", "/v1/distribution")

    def health(self):
        return self._request("GET", "/v1/health")

    # -- flow events (bayctl/node/flows.py) ----------------------------------------------------

    def flows(self, **wanted):
        """Past flows from the agent's history; wanted: verdict, from, to, since, limit."""
        return self._request("GET", "/v1/flows?" + _query(wanted))["flows"]

    def follow_flows(self, history=False, **wanted):
        """Yield flows as the agent sees them (a generator: close it to hang up)."""
        query = _query({**wanted, "follow": 1, "history": 1 if history else None})
        connection = _UnixConnection(self.socket_path, self.timeout)
        try:
            connection.connect()
            sock = connection.sock  # the response takes it over (Connection: close)
            connection.request("GET", "/v1/flows?" + query)
            response = connection.getresponse()
            if response.status >= 400:
                document = json.loads(response.read() or b"{}")
                raise NodeError(document.get("error") or f"agent answered HTTP {response.status}")
            sock.settimeout(None)  # a quiet node sends nothing for as long as it likes
            for line in response:
                if line.strip():
                    yield json.loads(line)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NodeError(f"agent not running at {self.socket_path}") from None
        finally:
            connection.close()

    def flow_status(self):
        return self._request("GET", "/v1/flows/status")

    def set_flow_limit(self, rate, burst, enabled=True):
        body = json.dumps({"rate": rate, "burst": burst, "enabled": enabled}).encode()
        return self._request("PUT", "/v1/flows/limit", body=body,
                             headers={"Content-Type": "application/json"})

    # -- transport -----------------------------------------------------------------------------

    def _request(self, method, path, body=None, headers=None):
        connection = _UnixConnection(self.socket_path, self.timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            payload = response.read()
        except (FileNotFoundError, ConnectionRefusedError):
            raise AgentError(f"agent not running at {self.socket_path}") from None
        except PermissionError:
            raise AgentError(f"permission denied on {self.socket_path} (the agent's socket is root-only)") \
                from None
        except (socket.timeout, BlockingIOError):
            raise AgentTimeout(f"agent at {self.socket_path} did not answer within {self.timeout:g} s") \
                from None
        except (OSError, http.client.HTTPException) as exc:
            raise AgentError(f"agent at {self.socket_path}: {exc or type(exc).__name__}") from None
        finally:
            connection.close()
        try:
            document = json.loads(payload or b"{}")
        except ValueError:
            raise AgentError(f"agent at {self.socket_path} sent HTTP {response.status}, not JSON") from None
        if response.status >= 400:
            message = document.get("error") if isinstance(document, dict) else None
            raise AgentError(message or f"agent at {self.socket_path} answered HTTP {response.status}")
        return document


def _query(params):
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})

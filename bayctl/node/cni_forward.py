"""The plugin's side of `POST /v1/cni`: hand the call to the node agent (cni_service.py).

Everything here is cheap to import (json, os and the agent's HTTP client): this runs in every
plugin process before anything else. When the agent cannot take the call (not running, an
older agent without /v1/cni, another namespace, any failure of the exchange) the plugin does
the work itself as it always did, so DEL still frees the address and the links with the
agent down, and ADD fails as it did, naming the agent.

An agent that takes the call but does not answer within the network's `agentTimeout` (hung,
stopped, swamped) bounds what the runtime waits: DEL runs here (idempotent, under the IPAM's
own lock, so a late run by the agent does no harm) and tells the agent no more than that long;
ADD and the other verbs answer CNI error 11, try again later (every one of them needs the
agent, and running ADD here too could race the agent's own run of it).
"""

import json
import os

from bayctl.node.cni_skel import TRY_AGAIN_LATER, error_document
from bayctl.node.protocol import DEFAULT_SOCKET, ENV_SOCKET

FORWARDED = ("ADD", "DEL", "CHECK", "GC", "STATUS")  # VERSION needs nobody
NAMESPACES = ("net", "mnt")
# Seconds the agent has to answer a forwarded call, unless the network config's agentTimeout
# says otherwise: 50 ADDs at once take ~5 s each on a 2-core node (bench/cni_latency.py).
DEFAULT_AGENT_TIMEOUT = 30.0


def namespace_ids():
    """{"net": "dev:inode", "mnt": ...} of this process: equal ids are the same namespace."""
    ids = {}
    for kind in NAMESPACES:
        seen = os.stat(f"/proc/self/ns/{kind}")
        ids[kind] = f"{seen.st_dev}:{seen.st_ino}"
    return ids


def forward(environ, stdin_text):
    """(document or None, exit status, stderr text) as the agent ran the call, or None when the
    plugin has to run it itself."""
    if environ.get("CNI_COMMAND") not in FORWARDED:
        return None
    try:
        config = json.loads(stdin_text or "")
    except ValueError:
        return None  # the plugin's own parse names the error
    if not isinstance(config, dict):
        return None
    socket_path = config.get("agentSocket") or environ.get(ENV_SOCKET) or DEFAULT_SOCKET
    if not isinstance(socket_path, str) or not os.path.exists(socket_path):
        return None
    if _relative_paths(config, environ):
        return None  # resolved against this process's directory: the agent's is another one
    from bayctl.node.client import AgentClient, AgentError, AgentTimeout

    # The verbs ask the agent things (group check, registration) at the socket the plugin
    # resolved, never at whatever the agent's own environment names.
    environ = dict(environ)
    if not config.get("agentSocket"):
        environ.setdefault(ENV_SOCKET, socket_path)
    try:
        request = {"environ": environ, "stdin": stdin_text, "namespaces": namespace_ids()}
    except OSError:
        return None  # no /proc/self/ns here: nothing proves the agent would run it in our place
    timeout = agent_timeout(config)
    try:
        answer = AgentClient(socket_path, timeout=timeout).run_cni(request)
    except AgentTimeout:
        if environ.get("CNI_COMMAND") == "DEL":
            return None
        message = (f"the node agent at {socket_path} did not answer within {timeout:g}s (agentTimeout): "
                   "try again later")
        version = config.get("cniVersion") if isinstance(config.get("cniVersion"), str) else "1.0.0"
        return error_document(version, TRY_AGAIN_LATER, message), 1, ""
    except AgentError:
        # Not running, refused (another namespace, an agent without /v1/cni) or failed: ADD and
        # DEL are idempotent, so running the call here is right even if the agent began it.
        return None
    if not isinstance(answer, dict) or answer.get("status") not in (0, 1):
        return None
    document = answer.get("document")
    document = document if isinstance(document, dict) else None
    return document, answer["status"], str(answer.get("stderr") or "")


def agent_timeout(config, default=DEFAULT_AGENT_TIMEOUT):
    """The network's agentTimeout when it is a usable number of seconds, else `default` (the
    plugin's config check refuses an unusable one)."""
    value = config.get("agentTimeout", DEFAULT_AGENT_TIMEOUT)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 600:
        return float(value)
    return default


def _relative_paths(config, environ):
    """The paths of the call that are relative (the agent would resolve them elsewhere)."""
    paths = [config.get("agentSocket"), config.get("stateDir"), environ.get("CNI_NETNS"),
             *environ.get("CNI_PATH", "").split(os.pathsep)]
    return [p for p in paths if isinstance(p, str) and p and not os.path.isabs(p)]

"""The node agent runs `bayctl-cni` calls for the plugin: `POST /v1/cni`.

A runtime starts one plugin process per ADD and DEL, 50 at once when 50 containers start.
Started cold, each would load the netlink library and the rest of the node side (about half a
second of CPU on a small node) before doing ~0.2 s of work; 50 of them share the node's cores.
The agent has all of that loaded already, so the plugin (cni_forward.py) hands it the call:
the runtime's environment and the network config, exactly as the plugin got them. The agent
runs the very same code the plugin would run (cni.run), on one of its request threads, and
answers with the CNI document, the exit status and what the plugin would have written to
stderr. This is the model of the thin CNI shims of Antrea and Multus (thick plugin mode).

The call runs where the plugin would have run it, or not at all: the agent refuses (409) a
plugin in another network or mount namespace (a namespace node of a local bay), since links
made in the agent's namespace, or a CNI_NETNS path resolved in another mount table, would be
wrong; the plugin then does the work itself. Request:
    {"environ": {name: value}, "stdin": "<network config>", "namespaces": {"net": id, "mnt": id}}
Answer: {"document": {...} | null, "status": 0 | 1, "stderr": "..."}.
"""

import json

from bayctl.node.cni_forward import NAMESPACES, namespace_ids
from bayctl.node.unixhttp import ApiError


def run_call(body):
    """The answer to one forwarded call (see the module's docstring); ApiError when refused."""
    from bayctl.node import cni

    try:
        request = json.loads(body or b"null")
    except ValueError as exc:
        raise ApiError(400, f"CNI call is not JSON: {exc}") from None
    if not isinstance(request, dict) or set(request) != {"environ", "stdin", "namespaces"}:
        raise ApiError(400, 'CNI call must be {"environ": {...}, "stdin": "...", "namespaces": {...}}')
    environ, stdin, namespaces = request["environ"], request["stdin"], request["namespaces"]
    if not isinstance(environ, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in environ.items()):
        raise ApiError(400, "CNI call: environ must map names to strings")
    if not isinstance(stdin, str):
        raise ApiError(400, "CNI call: stdin must be a string")
    mine = namespace_ids()
    if not isinstance(namespaces, dict) or any(namespaces.get(kind) != mine[kind] for kind in NAMESPACES):
        raise ApiError(409, "the CNI plugin runs in another network or mount namespace than this agent: "
                            "it does the call itself")
    with cni.captured_log() as lines:
        document, status = cni.run(environ, stdin)
    return {"document": document, "status": status, "stderr": "".join(lines)}

"""Providers: where a bay's machines come from (magnum, heat, local) behind one interface.

`get_provider(name, conn)` is the one entry point; see base.py for the interface.
"""

import importlib
import inspect

from bayctl.errors import CloudError
from bayctl.providers.base import MASTER, SLAVE, BayRequest, BayStatus, Node, Progress, Provider

__all__ = ["get_provider", "Provider", "Node", "BayRequest", "BayStatus", "Progress", "MASTER", "SLAVE"]

# name -> "module:Class"; imported only when asked for, so the local provider works
# on a machine without the cloud libraries.
PROVIDERS = {
    "heat": "bayctl.providers.heat:HeatProvider",
    "magnum": "bayctl.providers.magnum:MagnumProvider",
    "local": "bayctl.providers.local:LocalProvider",
}


def get_provider(name, conn=None, **options):
    """A provider instance by name: "heat", "magnum", "local", or "auto".

    `conn` is an openstacksdk Connection (bayctl.cloud.connection.connect) for the
    cloud providers. "auto" picks magnum when the cloud's Magnum accepts Mesos (for
    `request=BayRequest(...)`, asked with that bay's template), else heat; with no
    cloud (conn None) it picks local.
    """
    request = options.pop("request", None)  # only "auto" uses it: Magnum's answer depends on the bay
    if name == "auto":
        if conn is None:
            name = "local"
        else:
            from bayctl.providers.auto import choose_provider

            name = choose_provider(conn, request=request)
    if name not in PROVIDERS:
        raise CloudError(f"unknown provider {name!r}: choose one of auto, {', '.join(PROVIDERS)}")
    module_name, cls_name = PROVIDERS[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    # Options meant for another provider (e.g. heat's environments under "auto") are dropped.
    accepted = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        options = {k: v for k, v in options.items() if k in accepted}
    if name == "local":
        return cls(**options)
    if conn is None:
        raise CloudError(f"provider {name!r} needs a cloud: pass --os-cloud or set OS_* variables")
    return cls(conn, **options)

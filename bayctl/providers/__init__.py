"""Providers: where a bay's machines come from (magnum, heat, local) behind one interface.

`get_provider(name, conn)` is the one entry point; see base.py for the interface.
"""

import importlib
import inspect

from bayctl.errors import CloudError
from bayctl.model import MASTER, SLAVE, BayRequest, BayStatus, Node, Progress
from bayctl.providers.base import Provider, ProviderInfo

__all__ = ["WITHOUT_CLOUD", "get_provider", "provider_class", "provider_info", "providers_without_cloud",
           "Provider", "ProviderInfo", "Node", "BayRequest", "BayStatus", "Progress", "MASTER", "SLAVE"]

# name -> "module:Class"; imported only when asked for, so the local provider works
# on a machine without the cloud libraries.
PROVIDERS = {
    "heat": "bayctl.providers.heat:HeatProvider",
    "magnum": "bayctl.providers.magnum:MagnumProvider",
    "local": "bayctl.providers.local:LocalProvider",
}
WITHOUT_CLOUD = "local"  # what "auto" means where no cloud is configured


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
            name = WITHOUT_CLOUD
        else:
            from bayctl.providers.auto import choose_provider

            name = choose_provider(conn, request=request)
    cls = provider_class(name)
    # Options meant for another provider (e.g. heat's environments under "auto") are dropped.
    accepted = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        options = {k: v for k, v in options.items() if k in accepted}
    if not cls.info.needs_cloud:
        return cls(**options)
    if conn is None:
        raise CloudError(f"provider {name!r} needs a cloud: pass --os-cloud or set OS_* variables")
    return cls(conn, **options)


def provider_class(name):
    """The Provider subclass called `name` (imported now; its cloud libraries are imported only
    when it is used). CloudError for an unknown name."""
    if name not in PROVIDERS:
        raise CloudError(f"unknown provider {name!r}: choose one of auto, {', '.join(PROVIDERS)}")
    module_name, cls_name = PROVIDERS[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def provider_info(name) -> ProviderInfo:
    """What provider `name` is (its ProviderInfo); an unknown name (a damaged record) gets the defaults."""
    try:
        return provider_class(name).info
    except CloudError:
        return ProviderInfo()


def providers_without_cloud(**options):
    """An instance of each provider that builds without a cloud (for leftovers found by name)."""
    found = []
    for name in PROVIDERS:
        if not provider_info(name).needs_cloud:
            found.append(get_provider(name, None, **options))
    return found

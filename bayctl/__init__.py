"""bayctl: policy-isolated Mesos bays on OpenStack (or on this one machine).

The library is the product; the CLI, the devstack plugin and test harnesses use it.
"""

__version__ = "0.1.0"

# The bay verbs (bayctl.api), imported on first use so `import bayctl` stays light on a node.
_API = ("create_bay", "get_bay", "find_bay", "delete_bay", "list_bays", "apply_policy", "verify_bay", "Bay")


def __getattr__(name):
    if name in _API:
        from bayctl import api

        return getattr(api, name)
    raise AttributeError(f"module 'bayctl' has no attribute {name!r}")

"""bayctl: policy-isolated Mesos bays on OpenStack (or on this one machine).

The library is the product; the CLI, the devstack plugin and test harnesses use it.
"""

__version__ = "0.1.0"

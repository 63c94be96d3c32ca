"""Emulated OpenStack services that cannot run on this machine (Nova, Neutron, Magnum).

Each follows the published API reference named in its module docstring (paths, status
codes, microversion headers, error bodies) for the subset bayctl uses, validates every
request's token against the REAL keystone of the test tier, and keeps its state in memory.
"""

"""The real OpenStack test tier (keystone, glance, heat on loopback) and its emulators' wiring.

See tier.py for what runs and tests/harness/fixtures_cloud.py for the session fixture.
"""

"""Serve the emulators at the ports keystone's catalog of the tier points at."""

from harness.cloudtier.tier import HOST, PORTS
from harness.emulators.base import KeystoneValidator, Running
from harness.emulators.neutron import Neutron
from harness.emulators.nova import Nova


class Emulators:
    def __init__(self, tier):
        self.validator = KeystoneValidator(tier.auth)
        self.nova = Nova(self.validator, f"http://{HOST}:{PORTS['nova']}")
        self.neutron = Neutron(self.validator, f"http://{HOST}:{PORTS['neutron']}")
        self.nova.neutron = self.neutron  # Nova binds the ports servers boot on
        self._running = [Running(self.nova, PORTS["nova"]), Running(self.neutron, PORTS["neutron"])]
        self.magnum = None
        try:
            from harness.emulators.magnum import Magnum
        except ImportError:
            Magnum = None
        if Magnum is not None:
            self.magnum = Magnum(self.validator, f"http://{HOST}:{PORTS['magnum']}", tier)
            self._running.append(Running(self.magnum, PORTS["magnum"]))

    def stop(self):
        for running in self._running:
            running.stop()
        self.validator.close()


def start_emulators(tier):
    return Emulators(tier)

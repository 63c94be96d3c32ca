"""Serve the emulators at the ports keystone's catalog of the tier points at.

BAYCTL_REAL_NOVA=1 / BAYCTL_REAL_NEUTRON=1 put the REAL services (nova_real.py, neutron_real.py)
at those ports instead of the Nova / Neutron emulator.
"""

import os

from harness.cloudtier import nova_real
from harness.cloudtier.tier import HOST, PORTS
from harness.emulators.base import KeystoneValidator, Running
from harness.emulators.neutron import Neutron
from harness.emulators.nova import Nova


class Emulators:
    def __init__(self, tier):
        self.validator = KeystoneValidator(tier.auth)
        self._running = []
        self.real = []  # the real services started instead of an emulator, stopped with them
        self.nova = self.neutron = self.real_nova = self.real_neutron = None
        try:
            if nova_real.enabled("BAYCTL_REAL_NEUTRON"):
                from harness.cloudtier.neutron_real import RealNeutron

                self.real_neutron = RealNeutron(tier, os.path.join(tier.workdir, "real-neutron"))
                self.real.append(self.real_neutron)
                self.real_neutron.start()
            else:
                self.neutron = Neutron(self.validator, f"http://{HOST}:{PORTS['neutron']}")
                self._running.append(Running(self.neutron, PORTS["neutron"]))
            if nova_real.enabled("BAYCTL_REAL_NOVA"):
                self.real_nova = nova_real.RealNova(tier, os.path.join(tier.workdir, "real-nova"),
                                                   self.real_neutron)
                self.real.append(self.real_nova)
                self.real_nova.start()
            else:
                self.nova = Nova(self.validator, f"http://{HOST}:{PORTS['nova']}")
                self.nova.neutron = self.neutron  # Nova binds the ports servers boot on
                self._running.append(Running(self.nova, PORTS["nova"]))
        except BaseException:
            self.stop()
            raise
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
        for service in reversed(self.real):
            service.stop()
        self.validator.close()


def start_emulators(tier):
    return Emulators(tier)

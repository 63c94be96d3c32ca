"""Run the tier (and emulators) until Ctrl-C, for developing against it:

    cd tests && python -m harness.cloudtier.dev /var/tmp/bayctl-cloud-dev
    BAYCTL_CLOUD_TIER_REUSE=/var/tmp/bayctl-cloud-dev/auth.json python -m pytest -m cloud ...
"""

import json
import os
import shutil
import signal
import sys

from harness.cloudtier.emulators_wiring import start_emulators
from harness.cloudtier.tier import Tier


def main():
    workdir = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/bayctl-cloud-dev"
    shutil.rmtree(workdir, ignore_errors=True)
    tier = Tier(workdir)
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
    emulators = None
    try:
        tier.start()
        emulators = start_emulators(tier)
        path = os.path.join(workdir, "auth.json")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            json.dump({"auth": tier.auth, "demo_password": tier.demo_password, "timings": tier.timings,
                       "transport_url": tier.transport_url}, f)  # 0600: it holds the broker password
        print("READY", tier.timings, path, flush=True)
        signal.sigwait([signal.SIGTERM, signal.SIGINT])
    finally:
        if emulators is not None:
            emulators.stop()
        tier.stop()


if __name__ == "__main__":
    main()

"""The harness starts commands that tests interrupt with SIGINT taking it, even when the test run
itself was started with SIGINT ignored (a background job of a script, as CI runners may do)."""

import signal
import subprocess
import sys

from harness.interrupt import popen_interruptible

SHOW_SIGINT = [sys.executable, "-c",
               "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"]


def test_child_takes_sigint_although_the_runner_ignores_it():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        inherited = subprocess.run(SHOW_SIGINT, capture_output=True, text=True, check=True)
        child = popen_interruptible(SHOW_SIGINT, stdout=subprocess.PIPE, text=True)
        out, _ = child.communicate(timeout=60)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert inherited.stdout.strip() == "False"  # the trap the harness avoids
    assert out.strip() == "True"

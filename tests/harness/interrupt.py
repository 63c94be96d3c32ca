"""Start a bayctl command that a test will interrupt with SIGINT, as Ctrl-C in a terminal would.

A process inherits an ignored SIGINT, and a shell that starts a job in the background without job
control (`cmd &` in a script, as a CI runner or `nohup` may) sets SIGINT to ignored for it. Python
then installs no KeyboardInterrupt handler, so the test's Ctrl-C does nothing: the create runs to
the end and exits 0, the follower never stops. A terminal's foreground job has the default
disposition; the child gets it back here before exec, whatever the test runner inherited.
"""

import signal
import subprocess


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_interruptible(argv, **kwargs):
    """subprocess.Popen(argv, **kwargs) whose child takes SIGINT as a terminal's foreground job does."""
    return subprocess.Popen(argv, preexec_fn=_default_sigint, **kwargs)

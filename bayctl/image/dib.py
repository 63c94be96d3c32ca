"""Running disk-image-create: its whole output to a log file, its progress to a callback."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import namedtuple

from bayctl.errors import ImageError
from bayctl.image.progress import BuildProgress

DibRun = namedtuple("DibRun", "returncode progress")


def disk_image_create():
    """The disk-image-create of the Python running bayctl (its virtualenv), else the PATH's."""
    beside = os.path.join(os.path.dirname(sys.executable), "disk-image-create")
    found = beside if os.access(beside, os.X_OK) else shutil.which("disk-image-create")
    if not found:
        raise ImageError("disk-image-create not found: install bayctl's image extra "
                         "(pip install 'bayctl[image]')")
    return found


def dib_command(output_base, image_format, compress, element_names):
    """disk-image-create's argv: `-o BASE` makes BASE.<format>."""
    argv = [disk_image_create(), "-o", output_base, "-t", image_format]
    if not compress:
        argv.append("-u")
    return argv + list(element_names)


def run(argv, env, log_path, script_owners, on_step=None, append=False):
    """Run DIB to completion; every output line goes to `log_path`, step changes to `on_step`."""
    progress = BuildProgress(script_owners)
    with open(log_path, "a" if append else "w", encoding="utf-8", errors="replace") as log:
        log.write("# " + " ".join(argv) + "\n")
        log.flush()
        # Own process group: an interrupt stops DIB and everything it started, and DIB's
        # own exit traps unmount and free the loop device.
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace",
                                start_new_session=True)
        previous = _sigterm_interrupts()
        try:
            for line in proc.stdout:
                log.write(line)
                step = progress.feed(line)
                if step is not None and on_step is not None:
                    on_step(step)
            returncode = proc.wait()
        except BaseException:
            _stop(proc, log)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    return DibRun(returncode, progress)


def _sigterm_interrupts():
    """SIGTERM stops the build like Ctrl-C (DIB unmounts its chroot) instead of orphaning it."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return signal.SIG_DFL if previous is None else previous


def _stop(proc, log, grace=300):
    """Stop DIB and let its exit trap unmount the chroot and free the loop device.

    SIGTERM to its whole process group ends the running step; bash then runs DIB's EXIT
    trap. Its output is drained meanwhile (a full pipe would block the cleanup) and kept in
    the log. Only if it has not finished after `grace` seconds is it killed.
    """
    deadline = time.monotonic() + grace
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    killer = threading.Timer(grace, _kill_group, args=(proc,))
    killer.daemon = True
    killer.start()
    try:
        for line in proc.stdout:
            log.write(line)
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
    finally:
        killer.cancel()


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

"""Running disk-image-create: its whole output to a log file, its progress to a callback."""

import os
import shutil
import signal
import subprocess
import sys
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
        try:
            for line in proc.stdout:
                log.write(line)
                step = progress.feed(line)
                if step is not None and on_step is not None:
                    on_step(step)
            returncode = proc.wait()
        except BaseException:
            _stop(proc)
            raise
    return DibRun(returncode, progress)


def _stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

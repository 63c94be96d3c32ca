"""Following a DIB build from its output: the current phase, element and script.

DIB prints (behind a timestamp and " | "):
  `Running hooks from /tmp/dib_build.X/hooks/root.d`            a phase outside the chroot
  `dib-run-parts Running /tmp/in_target.d/install.d/01-foo`     a script starts
  `dib-run-parts 01-foo completed`                              ... and ends
  `INFO diskimage_builder.block_device...`                       the block-device steps
  `Converting image using qemu-img convert`                      the final conversion
A script that started and never completed is the one that failed.
"""

import re
from collections import deque, namedtuple

Step = namedtuple("Step", "phase element script")

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \| ")
_RUNNING = re.compile(r"^dib-run-parts Running (?P<path>\S+/(?P<phase>[\w.-]+\.d)/(?P<script>[^/\s]+))$")
_COMPLETED = re.compile(r"^dib-run-parts (?P<script>[^/\s]+) completed$")
_HOOKS = re.compile(r"^Running hooks from \S+/(?P<phase>[\w.-]+\.d)$")
_BLOCK_DEVICE = re.compile(r"^INFO diskimage_builder\.block_device")
_CONVERT = "Converting image using qemu-img convert"
_DONE = "Build completed successfully"
# DIB's own housekeeping after a script failed (unmounting, freeing the loop device):
# not what the user needs to see of the failure.
_HOUSEKEEPING = re.compile(r"^(INFO|DEBUG|WARNING) diskimage_builder\.|^Unmount |^dib-run-parts -+ ")


def strip_timestamp(line):
    return _TIMESTAMP.sub("", line.rstrip("\n"))


class BuildProgress:
    """Feed it DIB's output line by line; it tells when the step changes and what failed."""

    def __init__(self, script_owners, tail_lines=25):
        self.owners = script_owners
        self.tail_lines = tail_lines
        self.step = Step("start", None, None)
        self.running = None  # the script that started and has not completed
        self.succeeded = False
        # Lines printed since the current script started; kept longer than the tail shown
        # because DIB's cleanup after a failure follows the script's own last words.
        self._since_step = deque(maxlen=tail_lines * 8)
        self._recent = deque(maxlen=tail_lines * 8)

    def feed(self, raw_line):
        """Account for one line of output; returns the new Step when it changed, else None."""
        line = strip_timestamp(raw_line)
        self._recent.append(line)
        self._since_step.append(line)
        match = _RUNNING.match(line)
        if match:
            key = f"{match['phase']}/{match['script']}"
            self.running = Step(match["phase"], self.owners.get(key), match["script"])
            self._since_step = deque([line], maxlen=self.tail_lines * 8)
            return self._move(self.running)
        match = _COMPLETED.match(line)
        if match and self.running and match["script"] == self.running.script:
            self.running = None
            return None
        match = _HOOKS.match(line)
        if match:
            return self._move(Step(match["phase"], None, None))
        # DIB also queries its block-device config before root.d: not the block-device phase.
        if (_BLOCK_DEVICE.match(line) and self.step.phase not in ("start", "block-device")
                and self.running is None):
            return self._move(Step("block-device", None, None))
        if line == _CONVERT:
            self.running = None
            return self._move(Step("convert", None, None))
        if line == _DONE:
            self.succeeded = True
            return self._move(Step("done", None, None))
        return None

    def _move(self, step):
        if step == self.step:
            return None
        self.step = step
        return step

    def failure(self):
        """(Step that failed, its last lines): the unfinished script, else the last step."""
        step, lines = (self.running, self._since_step) if self.running else (self.step, self._recent)
        lines = [line for line in lines if not _HOUSEKEEPING.match(line)]
        return step, lines[-self.tail_lines:]


def describe(step):
    """`install.d: mesos (00-mesos-local-debs)` or just the phase."""
    if step.element:
        return f"{step.phase}: {step.element} ({step.script})"
    if step.script:
        return f"{step.phase}: {step.script}"
    return step.phase

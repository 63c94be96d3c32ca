"""`--help` says what a flag does when it is not given (issue 12: kind and openstack do)."""

import subprocess
import sys

from bayctl.spec import FIELDS_BY_KEY


def test_create_help_shows_ranges_and_defaults():
    done = subprocess.run([sys.executable, "-m", "bayctl.cli.main", "create", "mesosbay", "--help"],
                          capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "400", "PATH": "/usr/bin"})
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    slaves, timeout = FIELDS_BY_KEY["slaves"], FIELDS_BY_KEY["timeout"]
    assert f"number of Mesos slaves ({slaves.lo}-{slaves.hi}; default: {slaves.default})" in text
    assert f"({timeout.lo}-{timeout.hi}; default: {timeout.default})" in text
    assert f"(default: {FIELDS_BY_KEY['container_cidr'].default})" in text
    assert "(default: auto)" in text and "(default: None)" not in text

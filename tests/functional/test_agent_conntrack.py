"""The agent sets the node's conntrack lifetimes from --conntrack-timeouts, and refuses a bad one.

(What the lifetimes do to packets is tests/functional/test_datapath.py's: this is the option's
way into the datapath's bayctl_ct_timeouts map.)
"""

import os
import subprocess

import pytest
from harness.fixtures_agent import agent_prerequisites, cleanup_agent, new_agent

from bayctl.node.datapath import Datapath
from bayctl.policy import layout

pytestmark = pytest.mark.root


def test_option_sets_the_datapath_timeouts():
    agent_prerequisites()
    agent = new_agent()
    agent.extra_args = ["--conntrack-timeouts", "tcp_established=7200, other=30"]
    try:
        agent.start()
        datapath = Datapath(agent.pin_dir)
        try:
            assert datapath.conntrack_timeouts() == {
                "tcp_syn": layout.CT_DEFAULT_TCP_SYN, "tcp_established": 7200,
                "tcp_closing": layout.CT_DEFAULT_TCP_CLOSING, "other": 30}
            agent.stop()
            agent.extra_args = []
            agent.start()      # without the option: the defaults again, not the last node setting
            assert datapath.conntrack_timeouts()["tcp_established"] == layout.CT_DEFAULT_TCP_ESTABLISHED
        finally:
            datapath.close()
    finally:
        cleanup_agent(agent)


@pytest.mark.parametrize("value, named", [
    ("tcp_fin=3", "'tcp_fin=3' is not NAME=SECONDS"),
    ("other=0", "other='0': seconds must be a whole number from 1"),
    ("other=ten", "other='ten'"),
])
def test_bad_option_is_one_line_before_anything_starts(value, named):
    agent_prerequisites()
    agent = new_agent()
    agent.extra_args = ["--conntrack-timeouts", value]
    try:
        result = subprocess.run(agent.command(), capture_output=True, text=True, timeout=60)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert "Traceback" not in result.stderr and named in lines[-1], result.stderr
        assert "--conntrack-timeouts" in lines[-1]
        assert not os.path.exists(agent.pin_dir), "nothing was loaded"
    finally:
        cleanup_agent(agent)

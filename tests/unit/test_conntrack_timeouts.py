"""--conntrack-timeouts: what the agent writes into the datapath's bayctl_ct_timeouts map."""

import pytest

from bayctl.errors import NodeError
from bayctl.node.conntrack_gc import parse_timeouts
from bayctl.node.datapath import CT_DEFAULT_TIMEOUTS, CT_TIMEOUT_FIELDS
from bayctl.policy import layout


def test_any_subset_by_name():
    assert parse_timeouts("") == {}
    assert parse_timeouts("tcp_established=7200") == {"tcp_established": 7200}
    assert parse_timeouts(" tcp_syn=30 , other=5,") == {"tcp_syn": 30, "other": 5}


def test_names_and_defaults_are_the_header_fields():
    assert CT_TIMEOUT_FIELDS == ("tcp_syn", "tcp_established", "tcp_closing", "other")
    assert CT_DEFAULT_TIMEOUTS == {"tcp_syn": layout.CT_DEFAULT_TCP_SYN,
                                   "tcp_established": layout.CT_DEFAULT_TCP_ESTABLISHED,
                                   "tcp_closing": layout.CT_DEFAULT_TCP_CLOSING,
                                   "other": layout.CT_DEFAULT_OTHER}


@pytest.mark.parametrize("text, message", [
    ("tcp_fin=3", "'tcp_fin=3' is not NAME=SECONDS"),
    ("other", "'other' is not NAME=SECONDS"),
    ("other=0", "other='0': seconds must be a whole number from 1"),
    ("other=-5", "other='-5'"),
    ("other=1.5", "other='1.5'"),
    (f"other={2**32}", f"other='{2**32}'"),
])
def test_bad_values_are_one_line_naming_the_item(text, message):
    with pytest.raises(NodeError) as caught:
        parse_timeouts(text)
    assert message in str(caught.value) and "\n" not in str(caught.value)

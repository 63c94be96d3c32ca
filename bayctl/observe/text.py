"""How flows read on a terminal (like `hubble observe`), and the --since argument."""

import datetime
import re

from bayctl.errors import BayctlError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
VERDICTS = ("allowed", "denied", "would-allow", "would-drop")


def parse_since(text, now):
    """'90s', '5m', '2h', '1d' -> the epoch seconds that long before `now`."""
    match = _DURATION.match(text.strip())
    if not match:
        raise BayctlError(f"--since {text!r}: expected a duration like 30s, 5m, 2h or 1d")
    return now - float(match.group(1)) * _UNIT[match.group(2)]


def endpoint(flow, side):
    """'web(10.0.0.5):5432' for one side ('src' or 'dst') of a flow."""
    group = flow["from"] if side == "src" else flow["to"]
    port = flow.get(f"{side}_port")
    text = f"{group}({flow[f'{side}_ip']})"
    return f"{text}:{port}" if port is not None else text


def line(flow):
    """One flow as one line: time, node, interface, who -> whom, protocol, verdict (why)."""
    moment = datetime.datetime.fromtimestamp(flow["epoch"], tz=datetime.timezone.utc)
    verdict = flow["verdict"].upper()
    if flow.get("reason"):
        verdict += f" ({flow['reason']})"
    return (f"{moment:%b %d %H:%M:%S.%f}"[:-3] + f"  {flow['node']}  {flow['interface']}  "
            f"{endpoint(flow, 'src')} -> {endpoint(flow, 'dst')}  {flow['proto']}  {verdict}")

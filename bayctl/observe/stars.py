"""Observed flows on the stars picture of `bayctl verify --html --flows 5m`.

Counts per group pair of the flows the agents reported (bayctl/observe/bay.py's history), drawn
over the measured edges: a red arc for denied flows, a blue one for allowed new flows, each
labelled with its count, and a table of the counts. Like Calico's stars UI showed live traffic.
"""

import html
import math
from collections import Counter

DENIED_COLOR = "#d32f2f"
ALLOWED_COLOR = "#1565c0"

CSS = """
.flow { fill: none; stroke-linecap: round; opacity: 0.85; }
.flow.denied { stroke: #d32f2f; }
.flow.allowed { stroke: #1565c0; }
.flow-count { font-size: 11px; font-weight: bold; text-anchor: middle; }
.flow-count.denied { fill: #d32f2f; } .flow-count.allowed { fill: #1565c0; }
tr.flows-denied td { color: #d32f2f; }
"""


def pair_counts(flows):
    """{(from, to, verdict): flows} for allowed and denied flows."""
    return Counter((flow["from"], flow["to"], flow["verdict"]) for flow in flows
                   if flow.get("verdict") in ("allowed", "denied"))


def svg_layer(counts, positions, node_radius):
    """SVG elements (a list of strings) for the pairs whose groups are both drawn."""
    parts = []
    for (source, target, verdict), count in sorted(counts.items()):
        if source not in positions or target not in positions:
            continue
        start, end = positions[source], positions[target]
        path, label = _arc(start, end, node_radius, 0.32 if verdict == "denied" else 0.24)
        width = min(8.0, 1.5 + math.log2(1 + count))
        parts.append(
            f'<path class="flow {verdict}" data-from="{_e(source)}" data-to="{_e(target)}" '
            f'data-count="{count}" style="stroke-width:{width:.1f}px" d="{path}">'
            f"<title>{_e(source)} → {_e(target)}: {count} {verdict} flow(s) observed</title></path>"
            f'<text class="flow-count {verdict}" x="{label[0]:.1f}" y="{label[1]:.1f}">{count}</text>')
    return parts


def table(counts, window):
    rows = "".join(
        f'<tr class="flows-{verdict}"><td>{_e(source)}</td><td>{_e(target)}</td><td>{verdict}</td>'
        f"<td>{count}</td></tr>" for (source, target, verdict), count in sorted(counts.items()))
    return (f'<h2>Observed flows, last {_e(window)}</h2><p>blue: allowed new flows; red: denied '
            "packets (counted per group pair, as the agents reported them)</p>"
            "<table class=\"flows\"><thead><tr><th>from</th><th>to</th><th>verdict</th><th>flows</th>"
            f"</tr></thead><tbody>{rows or '<tr><td colspan=4>none</td></tr>'}</tbody></table>")


def _arc(start, end, node_radius, bend_ratio):
    (x1, y1), (x2, y2) = start, end
    dx, dy = x2 - x1, y2 - y1
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    sx, sy = x1 + ux * node_radius, y1 + uy * node_radius
    ex, ey = x2 - ux * node_radius, y2 - uy * node_radius
    bend = bend_ratio * length
    cx, cy = (sx + ex) / 2 - uy * bend, (sy + ey) / 2 + ux * bend
    # the label sits at the arc's middle (t = 0.5 of the quadratic curve)
    label = (0.25 * sx + 0.5 * cx + 0.25 * ex, 0.25 * sy + 0.5 * cy + 0.25 * ey)
    return f"M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}", label


def _e(text):
    return html.escape(str(text), quote=True)

"""A self-contained HTML page of a verification: groups as circles, the measured edges
between them, in the manner of Calico's stars collector (inline SVG and CSS, no scripts,
nothing fetched from the network).

Edges: `edge allowed` (some probe got through), `edge blocked` (nothing did),
plus `mismatch` where any probe of the pair differs from the policy. Each edge and group
carries data-* attributes so a test (or a person with the inspector) can read what is drawn.
"""

import html
import math
from collections import defaultdict

from bayctl.verify.report import Report

SIZE = 640
RADIUS = 230
NODE_RADIUS = 46
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]

CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px 0; }
.summary { margin: 0 0 12px 0; }
.summary.ok { color: #1a7f37; } .summary.bad { color: #c62828; font-weight: bold; }
svg { border: 1px solid #ddd; background: #fbfbfb; }
.group circle { stroke: #333; stroke-width: 2px; }
.group text { font-size: 13px; text-anchor: middle; dominant-baseline: middle; fill: #fff;
              font-weight: bold; }
.group.external circle { fill: #777; stroke-dasharray: 6 3; }
.group.intra-blocked circle { stroke: #c8c8c8; stroke-dasharray: 3 3; }
.group.mismatch circle { stroke: #d32f2f; stroke-width: 4px; }
.edge { fill: none; }
.edge.allowed { stroke: #2e9e44; stroke-width: 3px; marker-end: url(#arrow-allowed); }
.edge.blocked { stroke: #c8c8c8; stroke-width: 1px; stroke-dasharray: 4 4; }
.edge.mismatch { stroke: #d32f2f; stroke-width: 4px; stroke-dasharray: none;
                 marker-end: url(#arrow-mismatch); }
.legend text { font-size: 12px; }
table { border-collapse: collapse; margin-top: 16px; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
tr.mismatch td { background: #ffebee; }
"""


def render(report: Report, flows=None, flows_window="") -> str:
    """The page; with `flows` (observed flow documents) their counts per pair are drawn too."""
    groups = list(report.groups)
    positions = _layout(groups)
    by_pair, intra = defaultdict(list), defaultdict(list)
    for probe in report.pairs:
        if probe.source == probe.target:
            intra[probe.source].append(probe)  # shown on the group itself, not as an edge
        else:
            by_pair[(probe.source, probe.target)].append(probe)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" '
             f'viewBox="0 0 {SIZE} {SIZE}" role="img" aria-label="measured connectivity between groups">',
             "<defs>", _marker("arrow-allowed", "#2e9e44"), _marker("arrow-mismatch", "#d32f2f"), "</defs>"]
    # Blocked edges first, so allowed and mismatched ones are drawn on top.
    ordered = sorted(by_pair.items(), key=lambda item: _edge_class(item[1]) != "edge blocked")
    for (source, target), probes in ordered:
        allowed = [p.service for p in probes if p.observed]
        css = _edge_class(probes)
        parts.append(
            f'<path class="{css}" data-from="{_e(source)}" data-to="{_e(target)}" '
            f'data-allowed="{_e(" ".join(allowed))}" d="{_curve(positions[source], positions[target])}">'
            f"<title>{_e(source)} → {_e(target)}: {_e(', '.join(allowed) or 'nothing gets through')}</title>"
            "</path>")
    observed = None
    if flows is not None:  # observed traffic (bayctl/observe/stars.py), under the groups
        from bayctl.observe import stars

        observed = stars.pair_counts(flows)
        parts += stars.svg_layer(observed, positions, NODE_RADIUS)
    for index, group in enumerate(groups):
        x, y = positions[group]
        external = group == "external"
        color = "#777" if external else PALETTE[index % len(PALETTE)]
        where = report.placement.get(group, {})
        members = intra.get(group, [])
        inside = ("allowed" if any(p.observed for p in members) else "blocked") if members else "unmeasured"
        css = "group" + (" external" if external else "") + f" intra-{inside}"
        css += " mismatch" if any(p.mismatch for p in members) else ""
        parts.append(
            f'<g class="{css}" data-group="{_e(group)}" '
            f'data-node="{_e(where.get("node", ""))}" data-ip="{_e(where.get("ip", ""))}" '
            f'data-intra="{inside}">'
            f"<title>{_e(group)}: within the group {inside}</title>"
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{NODE_RADIUS}" fill="{color}"/>'
            f'<text x="{x:.1f}" y="{y:.1f}" style="font-size:{_label_size(group)}px">{_e(group)}</text></g>')
    parts.append("</svg>")

    mismatches = report.mismatches
    if mismatches:
        summary = (f'<p class="summary bad">{len(mismatches)} of {len(report.pairs)} probes differ from '
                   "the policy.</p>")
    else:
        summary = f'<p class="summary ok">{len(report.pairs)} probes, all as the policy says.</p>'
    rows = "".join(
        f'<tr class="{"mismatch" if probe.mismatch else "match"}"><td>{_e(probe.source)}</td>'
        f"<td>{_e(probe.target)}</td><td>{_e(probe.service)}</td>"
        f'<td>{"allow" if probe.expected else "deny"}</td><td>{"allow" if probe.observed else "deny"}</td>'
        f"<td>{_e(probe.detail)}</td></tr>" for probe in report.pairs)
    digest = (report.policy_digest or "")[:12]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>bayctl verify {_e(report.bay)}</title><style>{CSS}{_flow_css(observed)}</style></head><body>"
        f"<h1>Bay {_e(report.bay)}: measured connectivity</h1>"
        f'<p class="policy">policy {_e(digest)} &middot; groups: {_e(", ".join(groups))} &middot; '
        f"green arrows: traffic gets through; grey dashes: blocked; red: differs from the policy</p>"
        f"{summary}{''.join(parts)}"
        "<table><thead><tr><th>from</th><th>to</th><th>service</th><th>policy</th><th>measured</th>"
        f"<th>detail</th></tr></thead><tbody>{rows}</tbody></table>{_flow_table(observed, flows_window)}"
        "</body></html>\n")


def _flow_css(observed):
    if observed is None:
        return ""
    from bayctl.observe import stars

    return stars.CSS


def _flow_table(observed, window):
    if observed is None:
        return ""
    from bayctl.observe import stars

    return stars.table(observed, window)


def _label_size(name: str) -> float:
    # Long names shrink to stay inside their circle.
    return round(min(13.0, 13.0 * 9 / max(1, len(name))), 1)


def _edge_class(probes) -> str:
    css = "edge allowed" if any(p.observed for p in probes) else "edge blocked"
    if any(p.mismatch for p in probes):
        css += " mismatch"
    return css


def _layout(groups):
    center = SIZE / 2
    positions = {}
    for index, group in enumerate(groups):
        angle = -math.pi / 2 + 2 * math.pi * index / max(1, len(groups))
        positions[group] = (center + RADIUS * math.cos(angle), center + RADIUS * math.sin(angle))
    return positions


def _curve(start, end) -> str:
    """A gentle arc from the edge of one circle to the edge of the other; A->B and B->A bend
    to opposite sides, so both directions stay visible."""
    (x1, y1), (x2, y2) = start, end
    dx, dy = x2 - x1, y2 - y1
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    sx, sy = x1 + ux * NODE_RADIUS, y1 + uy * NODE_RADIUS
    ex, ey = x2 - ux * (NODE_RADIUS + 6), y2 - uy * (NODE_RADIUS + 6)
    bend = 0.15 * length
    cx, cy = (sx + ex) / 2 - uy * bend, (sy + ey) / 2 + ux * bend
    return f"M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}"


def _marker(name, color) -> str:
    return (f'<marker id="{name}" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="6" markerHeight="6" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{color}"/></marker>')


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def check_writable(path: str) -> None:
    """Refuse an --html path the page could not be written to, before anything is measured
    (a verification can take minutes; its result must not be lost to a typo)."""
    import os

    from bayctl.errors import BayctlError

    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise BayctlError(f"--html {path}: is a directory (name a file)")
    if not os.path.isdir(directory):
        raise BayctlError(f"--html {path}: no directory {directory}")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise BayctlError(f"--html {path}: not writable")

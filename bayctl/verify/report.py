"""The outcome of a verification: every probe with expected and observed, and the mismatches."""

import dataclasses
import json
from typing import List, Optional

from bayctl.verify.matrix import Probe

PASS, DROP = "pass", "drop"


@dataclasses.dataclass
class Report:
    bay: str
    policy_digest: Optional[str]
    groups: List[str]
    placement: dict  # group -> {"node", "ip"}
    pairs: List[Probe]
    seconds: float = 0.0
    phases: dict = dataclasses.field(default_factory=dict)  # seconds per step (bench/verify_scale.py)

    @property
    def mismatches(self) -> List[Probe]:
        return [probe for probe in self.pairs if probe.mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches and all(probe.observed is not None for probe in self.pairs)

    def to_json(self) -> dict:
        return {
            "bay": self.bay,
            "policy_digest": self.policy_digest,
            "groups": self.groups,
            "placement": self.placement,
            "pairs": [probe.to_json() for probe in self.pairs],
            "mismatches": [probe.to_json() for probe in self.mismatches],
            "seconds": self.seconds,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False)

    def rows(self):
        """(from, to, service, expected, observed, verdict) for a table."""
        for probe in self.pairs:
            yield (probe.source, probe.target, probe.service, "allow" if probe.expected else "deny",
                   "allow" if probe.observed else "deny", "MISMATCH" if probe.mismatch else "ok")

    def grid(self) -> str:
        """The compact view: one row per ordered pair of groups, one column per service, each
        cell what real packets did (pass/drop; PASS!/DROP! where that differs from the policy,
        `-` where nothing was measured)."""
        services, rows = [], {}
        for probe in self.pairs:
            if probe.service not in services:
                services.append(probe.service)
            rows.setdefault((probe.source, probe.target), {})[probe.service] = probe
        labels = {pair: f"{pair[0]} -> {pair[1]}" for pair in rows}
        width = max([len("from -> to"), *map(len, labels.values())]) + 2
        columns = [max(len(service), 5) + 2 for service in services]
        header = "".join(service.ljust(column) for service, column in zip(services, columns))
        lines = [("from -> to".ljust(width) + header).rstrip()]
        for pair, cells in rows.items():
            line = labels[pair].ljust(width)
            for service, column in zip(services, columns):
                line += _cell(cells.get(service)).ljust(column)
            lines.append(line.rstrip())
        agreeing = sum(1 for probe in self.pairs if probe.observed is not None and not probe.mismatch)
        lines.append(f"{agreeing}/{len(self.pairs)} probes as the policy says (cells: what real packets did; "
                     "PASS!/DROP! marks a disagreement)")
        return "\n".join(lines) + "\n"


def _cell(probe: Optional[Probe]) -> str:
    if probe is None or probe.observed is None:
        return "-"
    word = PASS if probe.observed else DROP
    return word.upper() + "!" if probe.mismatch else word

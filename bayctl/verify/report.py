"""The outcome of a verification: every probe with expected and observed, and the mismatches."""

import dataclasses
import json
from typing import List, Optional

from bayctl.verify.matrix import Probe


@dataclasses.dataclass
class Report:
    bay: str
    policy_digest: Optional[str]
    groups: List[str]
    placement: dict  # group -> {"node", "ip"}
    pairs: List[Probe]
    seconds: float = 0.0

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

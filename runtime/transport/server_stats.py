"""The counters every server that devices talk to keeps (``edgesplit peer``, a pool front end)."""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict


@dataclass
class ServerStats:
    """Counters for logs, tests and the ``--json`` stop line; servers add their own fields."""

    served: int = 0
    probes: int = 0
    bad_requests: int = 0
    bundle_mismatches: int = 0
    expired: int = 0
    overloaded: int = 0
    errors: int = 0
    by_reason: Dict[str, int] = field(default_factory=dict)  # bad requests by ``WireError.reason``

    def bad_request(self, reason: str) -> None:
        self.bad_requests += 1
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1

    def as_dict(self) -> Dict[str, Any]:
        counts = dataclasses.asdict(self)
        counts["bad_request_reasons"] = counts.pop("by_reason")
        return counts

"""Per-destination behaviours, parsed from the scenario file's strings."""

from __future__ import annotations

from dataclasses import dataclass

from transmissions.channels.connect.simulator.malformed import CASES as MALFORMED_CASES

REJECTION_REASONS = {
    "REJ01": "Patient is no longer registered at this practice.",
    "REJ02": "Patient never registered at this practice.",
    "REJ03": "Duplicate document.",
    "REJ04": "Document incomplete or illegible.",
    "REJ05": "Document could not be downloaded or opened.",
    "REJ06": "Patient details do not match.",
    "REJ07": "Patient deceased.",
    "REJ99": "Other.",
}

KINDS = {
    "accept",
    "delivered_final",
    "reject",
    "inactive",
    "not_receiving",
    "system_error",
    "on_hold",
    "flaky",
    "slow",
    "never_ack",
    "size_limit",
    "malformed",
}


class BehaviourError(ValueError):
    """A behaviour string in the scenario file is not understood."""


@dataclass(frozen=True)
class Behaviour:
    """How one destination treats what it is sent."""

    kind: str = "accept"
    rejection_code: str = ""
    flaky_share: float = 0.0
    slow_seconds: float = 0.0
    size_limit: int | None = None
    malformed: str = ""

    @classmethod
    def parse(cls, spec: str) -> Behaviour:
        """Parse ``accept``, ``reject:REJ01``, ``flaky:0.3``, ``size_limit:N``,
        ``malformed:no_guid`` etc."""
        kind, _, argument = (spec or "accept").strip().partition(":")
        if kind not in KINDS:
            raise BehaviourError(f"unknown behaviour {spec!r}")
        try:
            if kind == "reject":
                code = argument or "REJ01"
                if code not in REJECTION_REASONS:
                    raise BehaviourError(f"unknown rejection code {code!r}")
                return cls(kind=kind, rejection_code=code)
            if kind == "flaky":
                share = float(argument or 0.3)
                if not 0 <= share <= 1:
                    raise BehaviourError("flaky share must be between 0 and 1")
                return cls(kind=kind, flaky_share=share)
            if kind == "slow":
                return cls(kind=kind, slow_seconds=float(argument or 2))
            if kind == "size_limit":
                return cls(kind=kind, size_limit=int(argument))
            if kind == "malformed":
                if argument not in MALFORMED_CASES:
                    raise BehaviourError(
                        f"unknown malformed case {argument!r}; one of "
                        + ", ".join(sorted(MALFORMED_CASES))
                    )
                return cls(kind=kind, malformed=argument)
        except ValueError as exc:
            raise BehaviourError(f"bad argument in behaviour {spec!r}") from exc
        return cls(kind=kind)

    @property
    def is_active(self) -> bool:
        return self.kind != "inactive"

    @property
    def is_receiving(self) -> bool:
        return self.kind != "not_receiving"

    def lifecycle(self) -> list[int]:
        """Status codes after 4002, in order; each follows the last after a delay."""
        if self.kind == "delivered_final" or self.kind == "never_ack":
            return [4003]
        if self.kind == "reject":
            return [4003, 4005]
        if self.kind == "system_error":
            return [5000]
        if self.kind == "on_hold":
            return [7000]
        return [4003, 4010]

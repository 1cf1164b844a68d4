"""The hook through which casework asks who a patient's practice is.

casework never imports ``transmissions`` (DESIGN: imports go one way), so the
look-up is registered from above: ``transmissions`` registers its PDS look-up when
it loads (``TransmissionsConfig.ready``). Casework defines the answer it needs and
the one failure it understands; the look-up translates whatever its service said.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from casework.patient_traces import PatientTraceOutcome


@dataclass(frozen=True)
class PatientLookupAnswer:
    """What the patient's record says: the practice it names (blank: none shown)
    and since when, to when (None: still registered), and its flags."""

    practice_ods_code: str
    practice_since: datetime.date | None
    practice_until: datetime.date | None
    deceased: bool
    deceased_on: datetime.date | None
    restricted: bool
    superseded: bool


class PatientLookupFailed(Exception):
    """No answer about the patient: ``outcome`` is a ``PatientTraceOutcome``
    other than FOUND; ``retry_safe`` says whether asking again later may help. The
    message never carries patient data."""

    def __init__(self, message: str, *, outcome: str, retry_safe: bool) -> None:
        super().__init__(message)
        if outcome == PatientTraceOutcome.FOUND:
            raise ValueError("a failed look-up cannot have found the patient")
        self.outcome = PatientTraceOutcome(outcome)
        self.retry_safe = retry_safe


# (nhs_number=..., correlation_id=...) -> PatientLookupAnswer, or PatientLookupFailed
PatientLookup = Callable[..., PatientLookupAnswer]
_registered: list[PatientLookup] = []


def patient_lookup_register(lookup: PatientLookup) -> None:
    """Make ``lookup`` the patient look-up (a later registration replaces it)."""
    _registered[:] = [lookup]


def patient_lookup() -> PatientLookup:
    """The registered look-up; none registered is a configuration error."""
    if not _registered:
        raise ImproperlyConfigured(
            "No patient look-up is registered (transmissions registers PDS's)."
        )
    return _registered[0]

"""Keyed hashes that stand for a patient identifier in the access log and audit.

An IG search or subject access export has to be recorded against the patient it was
about, so that a later request can list every search for that patient; but the
audit chain is append-only and kept for years, so the NHS number itself never goes
in. HMAC-SHA256 under a key held outside the database: the same number always gives
the same key (records can be matched), and without the key the hash cannot be
turned back into a number by trying the billion or so valid ones.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.utils.crypto import salted_hmac

_SALT = "docflow.audit.subject-key"


def subject_key(identifier: str) -> str:
    """64 hex characters standing for one NHS number (spaces and dashes ignored)."""
    digits = re.sub(r"[\s-]", "", identifier or "")
    # DOCFLOW_IG_SUBJECT_KEY keeps the keys stable if SECRET_KEY is rotated.
    secret = getattr(settings, "DOCFLOW_IG_SUBJECT_KEY", "") or settings.SECRET_KEY
    return salted_hmac(_SALT, digits, secret=secret, algorithm="sha256").hexdigest()

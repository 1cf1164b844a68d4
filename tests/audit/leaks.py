"""Find NHS numbers in text with an independent validator, not the one under test."""

from __future__ import annotations

import re

import nhs_number

# Any 10 digits, plain or in 3-3-4 groups split by spaces or dashes, not part of a
# longer digit run.
_TEN_DIGITS = re.compile(r"(?<![0-9])[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}(?![0-9])")


def valid_nhs_numbers_in(text: str) -> list[str]:
    """Every digit group in ``text`` that is a valid NHS number (modulus 11)."""
    found = []
    for candidate in _TEN_DIGITS.findall(text):
        digits = re.sub(r"[ -]", "", candidate)
        if nhs_number.is_valid(digits):
            found.append(candidate)
    return found

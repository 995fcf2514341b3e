"""Phone numbers as logs and history may show them: enough to tell people apart, not to call them."""

from __future__ import annotations

import hashlib
import re

_DIGITS = re.compile(r"\d")


def mask_number(number: str) -> str:
    """ "+15551230001" -> "+1555***0001": country and area kept, the middle hidden, last four kept.

    Anything that is not a plausible phone number is masked whole, so a forged `From` cannot put
    arbitrary text into a log line.
    """
    number = number.strip()
    if not re.fullmatch(r"\+?\d{6,15}", number):
        return "<invalid number>" if number else "<no number>"
    plus = "+" if number.startswith("+") else ""
    digits = number.lstrip("+")
    return f"{plus}{digits[:4]}***{digits[-4:]}"


def redact_numbers(text: str) -> str:
    """Every phone-number-looking run in free text masked the same way (for log messages)."""
    return re.sub(r"\+?\d[\d\s().-]{7,}\d", lambda m: mask_number(re.sub(r"[\s().-]", "", m.group())), text)


def number_key(number: str) -> str:
    return hashlib.sha256(number.strip().encode()).hexdigest()

"""Phone numbers in one form, E.164 ("+15551230001"), whichever way they were written.

The allowlist is keyed by number and Twilio sends `From` in E.164, so a key written "+1 555 123 0001"
or "(555) 123-0001" never matched, and neither did the README's own `curl -d From=+15550000000`:
in a form body `+` is a space, so the bot saw " 15550000000". Both sides now go through libphonenumber
(`phonenumbers`): config keys once at start, `From` on every text.

"Valid" here is libphonenumber's *possible*: the right length for its country. Its stricter check
refuses the 555 numbers that documentation and tests use (and numbers allocated after the library's
release), which would lock people out for no safety gained; Twilio decides what is real.
"""

from __future__ import annotations

import re

import phonenumbers

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_DIALLED = re.compile(r"[\d\s()./+-]+")
"""What a written number may hold: digits, `+`, and the usual spaces, dots, dashes and brackets."""
_DIGITS = re.compile(r"\d{7,15}")


def normalise(written: str, region: str | None = None) -> str | None:
    """E.164 for a number as people write it, or None when it is not a possible phone number.

    "+1 555 123 0001", "+1 (555) 123-0001", "00 44 20 7946 0958" (the international prefix most of the
    world dials) need no region; "(555) 123-0001" needs `region` ("US"), the country it is dialled in.
    """
    text = written.strip()
    if _E164.fullmatch(text) and _possible(text, None):
        return text
    if not text or not _DIALLED.fullmatch(text):
        return None
    if text.startswith("00"):
        text = "+" + text[2:].lstrip()
    return _possible(text, region)


def caller(from_value: str, region: str | None = None) -> str:
    """A webhook's `From` as the allowlist is keyed: E.164 when it reads as a number, else as sent.

    Twilio sends E.164 already (returned as is). A bare run of digits is a number whose `+` a form body
    turned into a space (" 15550000000" from `curl -d From=+15550000000`) or one typed without it: read
    in `region` when one is set and that makes a number, else as international. Anything else (a channel
    address such as "whatsapp:+1…") stays as it was.
    """
    text = from_value.strip()
    if _E164.fullmatch(text):
        return text
    if _DIGITS.fullmatch(text):
        return (_possible(text, region) if region else None) or _possible("+" + text, None) or text
    return normalise(text, region) or text


def _possible(text: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def known_region(code: str) -> bool:
    """Whether `code` is a region libphonenumber knows ("US", "GB", "DE" …)."""
    return code.upper() in phonenumbers.SUPPORTED_REGIONS

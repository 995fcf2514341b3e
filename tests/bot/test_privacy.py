"""Masking in log lines: every phone number as people write it, never a SID, UUID, hex id or timestamp."""

from __future__ import annotations

import io
import logging
import re
import string
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.observability import MaskNumbers
from bot.sms.privacy import redact_numbers

HEX = "0123456789abcdef"
WORDS = st.text(alphabet=string.ascii_letters + " ", max_size=20)
BEFORE = st.sampled_from([" ", "=", ": ", " (", "/", '"', "[", ", ", "\t", "\n"])
AFTER = st.sampled_from([" ", ")", ", ", ". ", '"', "]", "; ", "\n", "/"])

sids = st.builds(
    lambda prefix, digits: prefix + digits,
    st.sampled_from(["SM", "MM", "AC", "PN", "CA", "MG", "RE"]),
    st.text(alphabet=HEX, min_size=32, max_size=32),
)
uuids = st.uuids().flatmap(lambda u: st.sampled_from([str(u), str(u).upper(), u.hex]))
hex_ids = st.text(alphabet=HEX, min_size=16, max_size=64)
moments = st.datetimes(min_value=datetime(2001, 9, 10), max_value=datetime(2033, 5, 17))
timestamps = st.one_of(
    moments.map(lambda d: str(int(d.replace(tzinfo=UTC).timestamp()))),  # unix seconds
    moments.map(lambda d: str(int(d.replace(tzinfo=UTC).timestamp() * 1000))),  # milliseconds
    moments.map(lambda d: f"{d.replace(tzinfo=UTC).timestamp():.6f}"),
    moments.map(lambda d: d.isoformat()),
    moments.map(lambda d: d.replace(tzinfo=UTC).isoformat()),
    moments.map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    moments.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    moments.map(lambda d: d.strftime("%Y%m%d%H%M%S")),
)
identifiers = st.one_of(sids, uuids, hex_ids, timestamps, st.ip_addresses().map(str))


@given(WORDS, BEFORE, identifiers, AFTER, WORDS)
def test_identifiers_in_text_are_never_altered(head: str, before: str, ident: str, after: str, tail: str) -> None:
    text = f"{head}{before}{ident}{after}{tail}"
    assert redact_numbers(text) == text


def _digits(n: int, size: int) -> str:
    return f"{n:0{size}d}"


nanp = st.builds(
    lambda area, exchange, line, form: form.format(a=area, e=_digits(exchange, 3), line=_digits(line, 4)),
    st.integers(200, 999),
    st.integers(0, 999),
    st.integers(0, 9999),
    st.sampled_from([
        "+1{a}{e}{line}", "+1 {a} {e} {line}", "+1 ({a}) {e}-{line}", "+1-{a}-{e}-{line}", "+1.{a}.{e}.{line}",
        "({a}) {e}-{line}", "({a}){e}-{line}", "{a}-{e}-{line}", "{a}.{e}.{line}", "{a} {e} {line}",
        "1-{a}-{e}-{line}", "1 ({a}) {e}-{line}", "{a}{e}{line}", "1{a}{e}{line}", "001 {a} {e} {line}",
    ]),
).map(lambda written: (written, "1" + re.sub(r"\D", "", written)[-10:]))  # fmt: skip


def _international(country: str, national: str, form: str) -> tuple[str, str]:
    grouped = " ".join(national[i : i + 3] for i in range(0, len(national), 3))
    written = form.format(cc=country, n=national, g=grouped)
    return written, country + national


PLANS = {"44": 10, "33": 9, "49": 10, "61": 9, "91": 10, "81": 10, "55": 11, "353": 9}
"""Country code -> national significant number length (one each, all possible per libphonenumber)."""

international = st.sampled_from(sorted(PLANS)).flatmap(
    lambda cc: st.builds(
        _international,
        st.just(cc),
        st.integers(10 ** (PLANS[cc] - 1), 10 ** PLANS[cc] - 1).map(str),
        st.sampled_from(
            ["+{cc}{n}", "+{cc} {g}", "+{cc}-{n}", "00{cc}{n}", "00 {cc} {g}", "00{cc} {g}", "+{cc} ({g})"]
        ),
    )
)


@given(WORDS, BEFORE, st.one_of(nanp, international), AFTER, WORDS)
def test_phone_numbers_in_usual_forms_are_always_masked(
    head: str, before: str, number: tuple[str, str], after: str, tail: str
) -> None:
    written, digits = number
    out = redact_numbers(f"{head}{before}{written}{after}{tail}")
    assert written not in out
    assert f"+{digits[:4]}***{digits[-4:]}" in out
    assert digits not in re.sub(r"\D", "", out)


@pytest.mark.parametrize(
    "text, masked",
    [
        pytest.param("delivered SM5f2c0a9e1d3b4c7a8e6f0123456789ab to +15551230001",
                     "delivered SM5f2c0a9e1d3b4c7a8e6f0123456789ab to +1555***0001", id="sid-kept-number-masked"),
        pytest.param("SM1234567890123456789012345678901a", "SM1234567890123456789012345678901a", id="digit-heavy-sid"),
        pytest.param("order 00123456789 shipped", "order 00123456789 shipped", id="leading-zeros-not-a-dial-prefix"),
        pytest.param("from 15550000000 (a form-decoded +)", "from +1555***0000 (a form-decoded +)", id="dev-curl"),
        pytest.param("at 1718012345: 2024-06-10 from 10.20.30.40:8000", "at 1718012345: 2024-06-10 from 10.20.30.40:8000",
                     id="time-date-address"),
    ],
)  # fmt: skip
def test_examples(text: str, masked: str) -> None:
    assert redact_numbers(text) == masked


def test_the_log_filter_keeps_sids_and_masks_numbers() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskNumbers())
    log = logging.getLogger("operator.privacy")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("delivery %s to %s failed", "SM0f1e2d3c4b5a69788796a5b4c3d2e1f0", "+1 (555) 123-0001")
    finally:
        log.removeHandler(handler)
    assert stream.getvalue() == "delivery SM0f1e2d3c4b5a69788796a5b4c3d2e1f0 to +1555***0001 failed\n"

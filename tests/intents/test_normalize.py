from __future__ import annotations

import pytest

from intents.normalize import MAX_LENGTH, normalize


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        pytest.param("  status  ", "status", id="trim"),
        pytest.param("ｓｔａｔｕｓ", "status", id="fullwidth-nfkc"),
        pytest.param("ａｃｋ ２", "ack 2", id="fullwidth-digits"),
        pytest.param("sta\u200btus", "status", id="zero-width-space"),
        pytest.param("\ufeffalerts firing", "alerts firing", id="byte-order-mark"),
        pytest.param("status\x07", "status", id="bell"),
        pytest.param("\x00ack 1", "ack 1", id="nul"),
        pytest.param("logs\ttimeout service=auth", "logs timeout service=auth", id="tabs"),
        pytest.param("logs timeout\nservice=auth", "logs timeout", id="newline-separates"),
        pytest.param("\n\nstatus\nalerts", "status", id="leading-newlines"),
        pytest.param("oncall payments\r\ntake payments 4h", "oncall payments", id="crlf"),
        pytest.param("alerts firing | oncall", "alerts firing", id="pipe"),
        pytest.param("status && alerts", "status", id="and-and-no-space-issue"),
        pytest.param(
            'metrics sum(rate(x{code=~"5..|4.."}[5m]))',
            'metrics sum(rate(x{code=~"5..|4.."}[5m]))',
            id="pipe-inside-promql-quotes",
        ),
        pytest.param("metrics up{a=~b|c} | sh", "metrics up{a=~b|c}", id="pipe-inside-braces-then-outside"),
        pytest.param('logs error service=payment |~ ".*"', "logs error service=payment", id="logql-pipe"),
        pytest.param("what's firing | mail x", "what's firing", id="apostrophe-is-no-quote"),
        pytest.param("🔥 status 🔥", "status", id="emoji"),
        pytest.param("🤷\u200d♂️", "", id="emoji-only"),
        pytest.param("what\u2019s the \u201cp99\u201d", 'what\'s the "p99"', id="curly-quotes"),
        pytest.param("status; rm -rf /", "status", id="semicolon"),
        pytest.param("logs error && curl evil", "logs error", id="and-and"),
        pytest.param("ack 2 || true", "ack 2", id="or-or"),
        pytest.param("z\u0351\u0352a\u0353l\u0354go", "zalgo", id="combining-marks"),
        pytest.param("", "", id="empty"),
    ],
)
def test_normalize(raw: str, clean: str) -> None:
    assert normalize(raw) == clean


def test_length_is_capped() -> None:
    assert len(normalize("a" * 5000)) == MAX_LENGTH
    assert len(normalize("ack 3 " + "pls " * 2000)) <= MAX_LENGTH


def test_case_is_kept_for_alert_names_and_promql() -> None:
    assert normalize("silence HighCPU 1h") == "silence HighCPU 1h"
    assert normalize('metrics up{job="API"}') == 'metrics up{job="API"}'

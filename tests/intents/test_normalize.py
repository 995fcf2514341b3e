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
        pytest.param("logs\ttimeout\nservice=auth", "logs timeout service=auth", id="tabs-newlines"),
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

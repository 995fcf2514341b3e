from __future__ import annotations

import math

import pytest

from monitors.errors import (
    BackendAuthError,
    BackendError,
    BackendQueryError,
    BackendTimeout,
    BackendUnavailable,
    BadBackendResponse,
    NotConfigured,
    describe,
    scrub,
)
from monitors.formatting import clip, duration, human, number, safe, trend


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (BackendTimeout("Loki", 3), "Loki: timed out after 3 s"),
        (BackendUnavailable("Kong", "cannot connect"), "Kong: unreachable (cannot connect)"),
        (BackendAuthError("Datadog", 403), "Datadog: access denied (HTTP 403), check credentials"),
        (BackendQueryError("Prometheus", "parse error at 1:5"), "Prometheus: query rejected: parse error at 1:5"),
        (BadBackendResponse("Elasticsearch", "not JSON"), "Elasticsearch: unreadable answer (not JSON)"),
        (BackendError("Loki", "HTTP 500"), "Loki: failed (HTTP 500)"),
        (NotConfigured("logs backend", "Add loki."), "No logs backend is configured. Add loki."),
    ],
)
def test_one_short_line_per_error(error: Exception, text: str) -> None:
    assert describe(error) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        "dial tcp 10.0.3.7:9090: connect: connection refused",
        "Get http://prometheus.internal:9090/api/v1/query: EOF",
        "lookup db-primary.prod.svc.cluster.local:5432 failed",
        "[fe80::1]:8080 unreachable",
        "localhost:9200 said no",
    ],
)
def test_scrub_removes_addresses(raw: str) -> None:
    clean = scrub(raw)
    for secret in ("10.0.3.7", "prometheus.internal", "cluster.local", "fe80", "localhost"):
        assert secret not in clean
    assert "<host>" in clean


def test_scrub_bounds_length() -> None:
    assert len(scrub("x " * 500)) <= 80


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(42.123, "%", "42.1%"), (512 * 2**20, "bytes", "512.0 MiB"), (0.234, "s", "234 ms"), (2.5, "s", "2.50 s"),
     (1500, "/s", "1.5k/s"), (0.0004, "s", "400 us"), (3, "", "3"), (math.nan, "%", "n/a"), (2_300_000, "", "2.3M")],
)  # fmt: skip
def test_human(value: float, unit: str, text: str) -> None:
    assert human(value, unit) == text


def test_number_trend_duration_clip_safe() -> None:
    assert number(0.00123) == "0.0012"
    assert (
        trend([1, 1, 1, 2, 3, 4]) == "rising" and trend([5, 5, 5, 5]) == "steady" and trend([9, 8, 2, 1]) == "falling"
    )
    assert [duration(s) for s in (5, 90, 7200, 200000)] == ["5s", "1m", "2h", "2d"]
    assert clip("one two three four five", 12) == "one two..."
    assert safe("web\nSTOP\x07 caf\u00e9 \U0001f525" + "x" * 100, 30) == "web STOP caf? ?" + "x" * 12 + "..."

"""Alert webhooks in, `Notification`s out: Alertmanager's webhook (payload version "4"), Grafana's
contact point (version "1", Alertmanager's group with more beside it), Datadog's and New Relic workflows',
one module per source (`alertmanager`, `grafana`, `datadog`, `newrelic`) over the helpers they share
(`common`).

Every parser takes the raw request body and either returns a `Notification` or raises `BadPayload`, whose
text is short and safe to log or answer with (it never echoes the payload). They do no I/O and keep no
state; what the caller needs to keep state with is on the result:

- `Notification.delivery_key` is the same for a repeat of the same delivery (Alertmanager retrying after a
  timeout, Datadog retrying after a 5xx, a proxy posting twice) and different as soon as any alert in it
  changes, so a `Deduplicator` keyed on it drops exactly the repeats.
- `is_stale(incoming, latest)` tells, per alert fingerprint, whether a delivery arrived out of order: a
  firing alert delivered after the resolution of the same episode (same `starts_at`, or a start before the
  recorded end) says nothing new and must not page anyone. A resolution that arrives before its firing is
  not stale: it is recorded, and the late firing is then recognised as stale. `drop_stale` applies this to
  a whole notification. Stale alerts belong in the history all the same; they are just not texted.

A new source is a module here with a `parse_<source>(body: bytes) -> Notification` that raises
`BadPayload`, built on `common` (bounded JSON loading, typed field checks, delivery keys).
"""

from __future__ import annotations

from bot.alerting.sources.alertmanager import MAX_ALERTS, parse_alertmanager
from bot.alerting.sources.common import MAX_BODY_BYTES, BadPayload, drop_stale, is_stale
from bot.alerting.sources.datadog import DATADOG_PAYLOAD_TEMPLATE, parse_datadog
from bot.alerting.sources.grafana import parse_grafana
from bot.alerting.sources.newrelic import NEWRELIC_PAYLOAD_TEMPLATE, parse_newrelic

__all__ = [
    "DATADOG_PAYLOAD_TEMPLATE",
    "MAX_ALERTS",
    "MAX_BODY_BYTES",
    "NEWRELIC_PAYLOAD_TEMPLATE",
    "BadPayload",
    "drop_stale",
    "is_stale",
    "parse_alertmanager",
    "parse_datadog",
    "parse_grafana",
    "parse_newrelic",
]

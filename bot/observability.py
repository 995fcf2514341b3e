"""Metrics and logs of the running bot: one Prometheus registry per app, JSON logs on request, and
phone numbers masked in every log line whatever the caller wrote."""

from __future__ import annotations

import logging
import sys

from prometheus_client import CollectorRegistry, Counter, Histogram
from pythonjsonlogger.json import JsonFormatter

from bot.sms.privacy import redact_numbers


class Metrics:
    """What `/metrics` exposes; created per app (never the global default registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "operator_messages_total",
            "Texts handled, by intent and outcome",
            ["intent", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "operator_reply_seconds", "Time from webhook to reply", ["intent"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
        )  # fmt: skip
        self.rejected = Counter(
            "operator_rejected_total", "Webhooks refused or not answered, by reason", ["reason"], registry=self.registry
        )
        self.backend_errors = Counter(
            "operator_backend_errors_total", "Monitor failures, by backend", ["backend"], registry=self.registry
        )
        self.deliveries = Counter(
            "operator_deliveries_total", "Messages sent through the REST API, by status", ["status"],
            registry=self.registry,
        )  # fmt: skip


class MaskNumbers(logging.Filter):
    """Masks anything shaped like a phone number in the final message, as a last line of defence."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact_numbers(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(json: bool = False, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(asctime)s %(levelname)s %(name)s %(message)s"
    handler.setFormatter(JsonFormatter(fmt) if json else logging.Formatter(fmt))
    handler.addFilter(MaskNumbers())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for chatty in ("httpx", "httpcore"):  # they log whole request URLs (account ids, internal hosts)
        logging.getLogger(chatty).setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # bot.db.migrate logs one line when it migrates
    logging.getLogger("psycopg").setLevel(logging.ERROR)  # its cancel warnings name the database host

"""Two `operator serve` processes on one Redis escalate as one bot: an alert received by either pages once,
the ticker runs in one of them, and when that process is killed mid-escalation the other takes the lease
over and carries on from the shared store: every step once, in order, none skipped, none twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest

from tests.bot.appserver import PUBLIC_URL, TOKEN
from tests.bot.servers_redis import RedisServer, redis_server
from tests.servers import free_port, http_status, wait_until

pytestmark = pytest.mark.servers

OPERATOR = str(Path(sys.executable).with_name("operator"))
HOOK = "hook-" + "s" * 27
PEOPLE = {"alice": "+15551230001", "bob": "+15551230002", "carol": "+15551230003", "dave": "+15551230004"}
CONFIG = (
    "users:\n"
    + "".join(f'  "{n}": {{name: {name}, role: operator}}\n' for name, n in PEOPLE.items())
    + """\
schedules:
  payments: {members: [alice], shift: 1w, handoff: "2026-01-05 09:00", timezone: UTC}
escalation:
  default:
    - {notify: payments, wait: 4s}
    - {notify: bob, wait: 4s}
    - {notify: carol, wait: 4s}
    - {notify: dave}
rules_interval_s: 1
"""
)
"""`rules_interval_s: 1` makes the lease lapse 10 s after its holder dies (its floor)."""


@dataclass
class FakeTwilio:
    """Accepts messages and calls from any process and keeps (resource, form, when)."""

    sent: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                fake.sent.append((self.path.rsplit("/", 1)[-1], dict(parse_qsl(self.rfile.read(length).decode())),
                                  time.monotonic()))  # fmt: skip
                body = json.dumps({"sid": f"SM{len(fake.sent):032d}", "status": "queued"}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def texts_to(self) -> list[str]:
        return [form["To"] for resource, form, _ in self.sent if resource == "Messages.json"]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Instance:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def ticking(self) -> bool:
        text = self.log.read_text()
        return text.rfind("escalation ticker running here") > text.rfind("escalation ticker stopped here")

    def alert(self, payload: dict[str, object]) -> None:
        response = httpx.post(f"{self.url}/webhooks/alertmanager", json=payload, timeout=20,
                              headers={"Authorization": f"Bearer {HOOK}"})  # fmt: skip
        assert response.status_code == 202, response.text


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@contextmanager
def pair(tmp: Path, redis: RedisServer, twilio: FakeTwilio) -> Iterator[tuple[Instance, Instance]]:
    redis.flush()
    path = tmp / "operator.yaml"
    path.write_text(f"public_url: {PUBLIC_URL}\n{CONFIG}", "utf-8")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OPERATOR_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(TWILIO_AUTH_TOKEN=TOKEN, TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_FROM_NUMBER="+15550001111",
               TWILIO_API_BASE_URL=twilio.url, REDIS_URL=redis.url, OPERATOR_WEBHOOK_TOKEN=HOOK)  # fmt: skip
    instances = []
    try:
        for name in ("a", "b"):
            port = free_port()
            log = tmp / f"{name}.log"
            (tmp / name).mkdir()
            with log.open("wb") as out:  # each its own SQLite history: only Redis is shared
                process = subprocess.Popen(
                    [OPERATOR, "serve", "--config", str(path), "--port", str(port)], cwd=tmp / name,
                    env={**env, "OPERATOR_HISTORY_PATH": str(tmp / name / "history.sqlite3")},
                    stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
            instance = Instance(name, f"http://127.0.0.1:{port}", process, log)
            instances.append(instance)
            wait_until(lambda i=instance: http_status(f"{i.url}/healthz") == 200 or i.process.poll() is not None,
                       60, name)  # fmt: skip
            assert process.poll() is None, log.read_text()
        yield instances[0], instances[1]
    finally:
        for instance in instances:
            if instance.process.poll() is None:
                instance.process.terminate()
                instance.process.wait(timeout=20)
        for instance in instances:
            assert "Traceback" not in instance.log.read_text(), instance.log.read_text()


def payload(fingerprint: str) -> dict[str, object]:
    alert = {"status": "firing", "labels": {"alertname": "PaymentsDown", "service": "payments", "severity": "critical"},
             "annotations": {"summary": "cards declined"}, "startsAt": "2026-11-21T23:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": fingerprint}  # fmt: skip
    return {"version": "4", "status": "firing", "receiver": "bot", "groupKey": f"g-{fingerprint}",
            "groupLabels": {"alertname": "PaymentsDown"}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "", "truncatedAlerts": 0, "alerts": [alert]}  # fmt: skip


def test_the_ticker_killed_mid_escalation_is_taken_over_without_a_step_skipped_or_doubled(
    tmp_path: Path, redis: RedisServer
) -> None:
    twilio = FakeTwilio()
    try:
        with pair(tmp_path, redis, twilio) as (a, b):
            wait_until(lambda: a.ticking() or b.ticking(), 20, "a ticker")
            ticker, other = (a, b) if a.ticking() else (b, a)
            other.alert(payload("f00d"))  # received by the instance that does not tick: it pages at once
            ticker.alert(payload("f00d"))  # Alertmanager's retry, to the other: a repeat pages nobody
            wait_until(lambda: len(twilio.sent) >= 1, 10, "the first page")
            wait_until(lambda: len(twilio.sent) >= 2, 15, "step 2, run by the ticker")
            assert twilio.texts_to() == [PEOPLE["alice"], PEOPLE["bob"]]
            time.sleep(0.5)  # step 2 recorded and completed (a few Redis round trips after its text went out);
            # a runner killed inside a step is taken over once its claim lapses: test_escalation.py, test_oncall_stores.py
            ticker.process.send_signal(signal.SIGKILL)  # mid-escalation: carol and dave are still to come
            ticker.process.wait(timeout=10)
            killed_at = time.monotonic()
            wait_until(lambda: len(twilio.sent) >= 4, 40, "the other instance finishes the escalation")
            time.sleep(5)  # anything doubled would have come by now
            assert other.ticking()
        assert twilio.texts_to() == [PEOPLE["alice"], PEOPLE["bob"], PEOPLE["carol"], PEOPLE["dave"]]
        carol_at = twilio.sent[2][2]
        assert carol_at - killed_at < 10 + 4 + 3  # within the lease's lapse (10 s) and a tick of the takeover
        bodies = [form["Body"] for _, form, _ in twilio.sent]
        assert bodies[0].startswith("FIRING 1 critical: PaymentsDown")
        assert all(body.startswith("[escalated] FIRING 1 critical: PaymentsDown") for body in bodies[1:])
    finally:
        twilio.stop()

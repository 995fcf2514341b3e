"""Two `operator serve` processes sharing one Redis and one PostgreSQL act as one bot.

Real processes on two loopback ports, a real Redis and PostgreSQL started by fixtures, a real
Prometheus for the rules, and a loopback stand-in for Twilio's REST API that both processes send to.
"""

from __future__ import annotations

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
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from bot.state.protocols import CONTEXT_UNAVAILABLE
from tests.bot.appserver import ALICE, PUBLIC_URL, TOKEN, USERS, sign
from tests.bot.servers_history import Postgres, postgres
from tests.bot.servers_redis import RedisServer, redis_server
from tests.servers import Exporter, PrometheusServer, free_port, http_status, wait_until

pytestmark = pytest.mark.servers

OPERATOR = str(Path(sys.executable).with_name("operator"))


@dataclass
class FakeTwilio:
    """Accepts message sends from any process and keeps their forms."""

    sent: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                fake.sent.append(dict(parse_qsl(self.rfile.read(length).decode())))
                body = b'{"sid": "SM00000000000000000000000000000001", "status": "queued"}'
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

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Instance:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def text(self, body: str, sid: str, number: str = ALICE) -> str:
        params = {"MessageSid": sid, "From": number, "To": "+15550001111", "Body": body}
        response = httpx.post(f"{self.url}/sms", content=urlencode(params), timeout=20, headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(params)})  # fmt: skip
        assert response.status_code == 200, response.text
        import xml.etree.ElementTree as ElementTree

        return "".join(m.text or "" for m in ElementTree.fromstring(response.text).iter("Message"))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def database() -> Iterator[Postgres]:
    with postgres() as server:
        yield server


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    yield fake
    fake.stop()


RULES = """\
rules:
  - name: SharedRule
    expr: 'operator_test_known_value{service="checkout"}'
    op: ">"
    threshold: 50
    severity: critical
    recipients: ["+15551230001"]
"""


@contextmanager
def pair(
    tmp: Path, redis: RedisServer, database: Postgres, twilio: FakeTwilio, config: str = ""
) -> Iterator[tuple[Instance, Instance]]:
    database.reset()
    redis.flush()
    path = tmp / "operator.yaml"
    path.write_text(f"public_url: {PUBLIC_URL}\n{USERS}history_path: {tmp / 'unused.sqlite3'}\n{config}", "utf-8")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OPERATOR_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update(TWILIO_AUTH_TOKEN=TOKEN, TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_FROM_NUMBER="+15550001111",
               TWILIO_API_BASE_URL=twilio.url, REDIS_URL=redis.url, DATABASE_URL=database.url())  # fmt: skip
    instances = []
    try:
        for name in ("a", "b"):
            port = free_port()
            log = tmp / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen([OPERATOR, "serve", "--config", str(path), "--port", str(port)],
                                           cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
            instance = Instance(f"http://127.0.0.1:{port}", process, log)
            instances.append(instance)
            wait_until(
                lambda i=instance: http_status(f"{i.url}/healthz") == 200 or i.process.poll() is not None, 60, name
            )
            assert process.poll() is None, log.read_text()
        yield instances[0], instances[1]
    finally:
        for instance in instances:
            if instance.process.poll() is None:
                instance.process.terminate()
                instance.process.wait(timeout=20)
        for instance in instances:
            assert "Traceback" not in instance.log.read_text(), instance.log.read_text()


def test_a_follow_up_sent_to_b_completes_a_command_started_on_a(tmp_path: Path, redis: RedisServer,
                                                                 database: Postgres, twilio: FakeTwilio) -> None:  # fmt: skip
    with pair(tmp_path, redis, database, twilio) as (a, b):
        assert a.text("cpu on checkout", "SM" + "1" * 32).startswith("this host cpu")
        assert b.text("what about memory?", "SM" + "2" * 32).startswith("[checkout] this host memory")
        assert a.text("help", "SM" + "3" * 32, number=ALICE)  # and back


def test_the_rate_limit_holds_across_both(tmp_path: Path, redis: RedisServer, database: Postgres,
                                          twilio: FakeTwilio) -> None:  # fmt: skip
    with pair(tmp_path, redis, database, twilio, "rate_burst: 3\nrate_per_minute: 1\n") as (a, b):
        replies = [(a if n % 2 else b).text("help", f"SM{n:032d}") for n in range(5)]
    assert [bool(r) and not r.startswith("Slow down") for r in replies[:3]] == [True, True, True]
    assert replies[3].startswith("Slow down") and replies[4] == ""


def test_a_webhook_repeated_to_the_other_instance_runs_once(tmp_path: Path, redis: RedisServer, database: Postgres,
                                                            twilio: FakeTwilio) -> None:  # fmt: skip
    with pair(tmp_path, redis, database, twilio) as (a, b):
        first = a.text("cpu on checkout", "SM" + "7" * 32)
        again = b.text("cpu on checkout", "SM" + "7" * 32)
        follow = b.text("what about memory?", "SM" + "8" * 32)
    assert again == first
    rows = database.execute("SELECT text FROM message_history WHERE direction = 'in' ORDER BY id")
    assert rows == [("cpu on checkout",), ("what about memory?",)]
    assert follow.startswith("[checkout]")


def test_rule_evaluation_moves_to_b_when_a_is_killed(tmp_path: Path, redis: RedisServer, database: Postgres,
                                                     twilio: FakeTwilio,
                                                     watched: tuple[Exporter, PrometheusServer]) -> None:  # fmt: skip
    exporter, server = watched
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = f"monitors: {{prometheus: {{url: '{server.url}'}}}}\nrules_file: {rules}\nrules_interval_s: 0.5\n"
    with pair(tmp_path, redis, database, twilio, config) as (a, b):
        exporter.known.labels("checkout").set(80)
        wait_until(lambda: len(twilio.sent) >= 1, 20, "first rule text")
        time.sleep(1.5)
        assert len(twilio.sent) == 1  # evaluated by one instance only: one text, not two
        exporter.known.labels("checkout").set(10)
        wait_until(lambda: len(twilio.sent) >= 2, 20, "resolution")
        holder = a if "rules lease taken" in a.log.read_text() else b
        assert "rules lease taken" in holder.log.read_text()
        holder.kill()
        exporter.known.labels("checkout").set(90)
        wait_until(lambda: len(twilio.sent) >= 3, 40, "the other instance takes over")
    bodies = [t["Body"] for t in twilio.sent]
    assert bodies[0].startswith("FIRING") and bodies[1].startswith("RESOLVED") and bodies[2].startswith("FIRING")
    assert all(t["To"] == ALICE for t in twilio.sent)


def test_redis_going_away_and_coming_back(tmp_path: Path, redis: RedisServer, database: Postgres,
                                          twilio: FakeTwilio) -> None:  # fmt: skip
    with pair(tmp_path, redis, database, twilio) as (a, b):
        assert a.text("cpu on checkout", "SM" + "a" * 32).startswith("this host cpu")
        redis.stop()
        try:
            assert b.text("help", "SM" + "b" * 32).startswith("Ask in your own words")  # stateless: fine
            degraded = a.text("what about memory?", "SM" + "c" * 32)
            assert degraded.endswith(CONTEXT_UNAVAILABLE)  # said plainly
            assert b.text("status", "SM" + "d" * 32)
            ready = httpx.get(f"{a.url}/readyz", timeout=10)
            assert ready.status_code == 200 and ready.json()["checks"]["shared_store"] == "unavailable"
        finally:
            redis.start()
        wait_until(redis.answers, 10, "redis back")
        assert httpx.get(f"{b.url}/readyz", timeout=10).json()["checks"]["shared_store"] == "ok"
        assert a.text("cpu on web", "SM" + "e" * 32).startswith("this host cpu")
        assert b.text("what about memory?", "SM" + "f" * 32).startswith("[web] this host memory")
        assert a.process.poll() is None and b.process.poll() is None  # nobody crashed

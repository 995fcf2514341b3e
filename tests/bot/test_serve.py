"""`operator serve` as a user starts it: a real process, real ports, real workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.bot.appserver import ALICE, PUBLIC_URL, TOKEN, USERS, sign
from tests.bot.servers_redis import redis_server
from tests.servers import free_port, http_status, wait_until

pytestmark = pytest.mark.servers

OPERATOR = str(Path(sys.executable).with_name("operator"))


def environment(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OPERATOR_", "DATABASE_URL", "REDIS_URL"))
    }
    return {**env, **extra}


@contextmanager
def running(args: list[str], cwd: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    log = cwd / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen([OPERATOR, "serve", "--port", str(port), *args], cwd=cwd, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(f"{url}/healthz") == 200 or process.poll() is not None, 30, "operator serve")
        assert process.poll() is None, log.read_text()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "Traceback" not in log.read_text()


def test_dev_mode_serves_unsigned_texts_on_loopback(tmp_path: Path) -> None:
    with running(["--dev"], tmp_path, environment()) as url:
        response = httpx.post(f"{url}/sms", data={"From": "+15550000000", "Body": "help", "MessageSid": "SM1"})
        assert response.status_code == 200 and "<Message>" in response.text
    assert (tmp_path / "operator-history.sqlite3").exists()  # the embedded default history


def test_signed_texts_with_two_workers_sharing_redis(tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text(f"public_url: {PUBLIC_URL}\n{USERS}", "utf-8")

    def text(url: str, sid: str, body: str) -> str:
        params = {"MessageSid": sid, "From": ALICE, "Body": body}
        response = httpx.post(f"{url}/sms", content=urlencode(params), headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(params)})  # fmt: skip
        assert response.status_code == 200, response.text
        return response.text

    with redis_server() as redis:
        env = environment(TWILIO_AUTH_TOKEN=TOKEN, REDIS_URL=redis.url)
        with running(["--config", str(config), "--workers", "2"], tmp_path, env) as url:
            assert "this host cpu" in text(url, "SM" + "0" * 32, "cpu on checkout")
            for n in range(1, 4):  # whichever worker takes each one, the follow-up has its context
                assert "[checkout] this host memory" in text(url, f"SM{n:032d}", "what about memory?")
            assert httpx.post(f"{url}/sms", data={"From": ALICE, "Body": "help"}).status_code == 403


def test_two_workers_without_a_shared_store_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text(f"public_url: {PUBLIC_URL}\n{USERS}", "utf-8")
    result = subprocess.run([OPERATOR, "serve", "--config", str(config), "--workers", "2", "--port", str(free_port())],
                            cwd=tmp_path, env=environment(TWILIO_AUTH_TOKEN=TOKEN), capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode != 0 and "--workers 2 needs REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_unsafe_starts_are_refused_with_one_line(tmp_path: Path) -> None:
    def serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([OPERATOR, "serve", "--port", str(free_port()), *args], cwd=tmp_path,
                              env=environment(**env), capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    no_token = serve()
    assert no_token.returncode != 0 and "TWILIO_AUTH_TOKEN is missing" in no_token.stderr
    exposed = serve("--dev", "--host", "0.0.0.0")
    assert exposed.returncode != 0 and "loopback" in exposed.stderr
    for result in (no_token, exposed):
        assert "Traceback" not in result.stderr

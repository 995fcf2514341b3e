"""`operator serve` as a user starts it: a real process, real ports, real workers."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
process_of: dict[str, subprocess.Popen[bytes]] = {}
"""The `operator serve` process behind each URL `running` yields."""


def environment(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OPERATOR_", "DATABASE_URL", "REDIS_URL"))
    }
    return {**env, **extra}


@contextmanager
def running(args: list[str], cwd: Path, env: dict[str, str], preexec_fn: Callable[[], None] | None = None,
            listening: str = "") -> Iterator[str]:  # fmt: skip
    """`operator serve` on a free port: ready when it says "listening on URL" (then /healthz must answer at
    once, with no retry), stopped afterwards; nothing it logged may be a traceback."""
    port = free_port()
    log = cwd / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen([OPERATOR, "serve", "--port", str(port), *args], cwd=cwd, env=env,
                                   stdout=output, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    process_of[url] = process
    try:
        wait_until(lambda: f"listening on {url}{listening}\n" in log.read_text() or process.poll() is not None, 60,
                   "operator serve")  # fmt: skip
        assert process.poll() is None, log.read_text()
        assert http_status(f"{url}/healthz") == 200  # ready when it says so
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
        with running(["--config", str(config), "--workers", "2"], tmp_path, env, listening=" (2 workers)") as url:
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


def test_version() -> None:
    from importlib.metadata import version

    result = subprocess.run([OPERATOR, "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == f"operator {version('operator-sms')}\n"


# --- slow and oversized requests (issue 12) -------------------------------------------------------------

ATTACKER = "127.0.0.2"
"""Another loopback address (Linux routes all of 127/8 to lo), so the attacker is one address and the test's
own client, on 127.0.0.1, another."""


def signed_text(url: str, body: str, sid: str) -> httpx.Response:
    params = {"MessageSid": sid, "From": ALICE, "Body": body}
    return httpx.post(f"{url}/sms", content=urlencode(params), timeout=30, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(params)})  # fmt: skip


def signed_config(tmp_path: Path, extra: str = "") -> list[str]:
    config = tmp_path / "operator.yaml"
    config.write_text(f"public_url: {PUBLIC_URL}\n{USERS}{extra}", "utf-8")
    return ["--config", str(config)]


def soft_open_files(limit: int) -> Callable[[], None]:
    """Start the process with the usual soft limit on open files (1,024 on most systems), whatever this
    machine's is: the flood below used it all up before the fix."""

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    return lower


def attacker_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind((ATTACKER, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def test_a_flood_of_half_headers_from_one_address_stops_no_text(tmp_path: Path) -> None:
    env = environment(TWILIO_AUTH_TOKEN=TOKEN)
    with running(signed_config(tmp_path), tmp_path, env, preexec_fn=soft_open_files(1024)) as url:
        port = int(url.rsplit(":", 1)[1])
        limits = Path(f"/proc/{process_of[url].pid}/limits").read_text()
        soft, hard = next(line.split()[3:5] for line in limits.splitlines() if line.startswith("Max open files"))
        assert soft == hard  # raised to the hard limit at start
        assert "this host cpu" in signed_text(url, "cpu", "SM" + "1" * 32).text  # warmed up
        flood: list[socket.socket] = []
        try:
            for _ in range(1100):  # each holds half a request header, as long as the server lets it
                try:
                    sock = attacker_socket(port)
                    flood.append(sock)
                    sock.sendall(b"POST /sms HTTP/1.1\r\nHost: ops.example.com\r\nX-Slow: ")
                except OSError:
                    pass  # closed at once: what the limit does
            time.sleep(0.5)
            for n in range(3):
                started = time.monotonic()
                assert "this host memory" in signed_text(url, "memory", f"SM{n:032d}").text
                assert httpx.get(f"{url}/healthz", timeout=30).text == "ok"
                assert time.monotonic() - started < 2.0
        finally:
            for sock in flood:
                sock.close()
    assert "over max_pending_per_address" in (tmp_path / "serve.log").read_text()


def test_oversized_headers_get_431_and_cost_no_memory(tmp_path: Path) -> None:
    import psutil

    with running(["--dev"], tmp_path, environment()) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bot\r\nX-Big: " + b"a" * 100 * 1024 + b"\r\n\r\n")
            assert read_to_close(sock).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
        server = psutil.Process(process_of[url].pid)
        before = server.memory_info().rss
        answers: list[bytes] = []

        def huge_partial_header() -> None:  # 4 MiB of one header that never ends, 20 at once: 80 MiB
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                try:
                    sock.sendall(b"POST /sms HTTP/1.1\r\nHost: bot\r\nX-Big: " + b"a" * (4 << 20))
                except OSError:
                    pass  # the server stopped reading and closed: the 431 is in the socket
                answers.append(read_to_close(sock))

        threads = [threading.Thread(target=huge_partial_header) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        grown_mib = (server.memory_info().rss - before) / 2**20
        assert len(answers) == 20 and all(a.startswith(b"HTTP/1.1 431 ") for a in answers), answers[:2]
        assert grown_mib < 8, f"the server grew by {grown_mib:.1f} MiB for 80 MiB of headers"
        assert httpx.get(f"{url}/healthz").text == "ok"


def read_to_close(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_a_half_sent_request_is_closed_by_the_timeouts_in_the_settings(tmp_path: Path) -> None:
    env = environment(OPERATOR_HEADER_TIMEOUT_S="1", OPERATOR_BODY_TIMEOUT_S="1")
    with running(["--dev"], tmp_path, env) as url:
        port = int(url.rsplit(":", 1)[1])
        for half in (b"POST /sms HTTP/1.1\r\nHost: bot\r\nContent-Le",
                     b"POST /sms HTTP/1.1\r\nHost: bot\r\nContent-Length: 100\r\n\r\nFrom=%2B1555"):  # fmt: skip
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                started = time.monotonic()
                sock.sendall(half)
                assert read_to_close(sock).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
                assert 0.9 < time.monotonic() - started < 3  # not 120 s


# --- clients that hang up (issue 12) ----------------------------------------------------------------------


def test_a_client_hanging_up_mid_body_logs_no_traceback(tmp_path: Path) -> None:
    webhook_token = "w" * 32
    env = environment(TWILIO_AUTH_TOKEN=TOKEN, OPERATOR_WEBHOOK_TOKEN=webhook_token,
                      OPERATOR_DASHBOARD_TOKEN="d" * 32)  # fmt: skip
    with running(signed_config(tmp_path), tmp_path, env) as url:
        port = int(url.rsplit(":", 1)[1])
        for path, extra in [("/sms", ""), ("/twilio/status", ""), ("/dashboard/login", ""),
                            ("/webhooks/alertmanager", f"Authorization: Bearer {webhook_token}\r\n"),
                            ("/webhooks/datadog", f"X-Operator-Secret: {webhook_token}\r\n")]:  # fmt: skip
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: ops.example.com\r\nContent-Length: 1000\r\n"
                                 f"Content-Type: application/x-www-form-urlencoded\r\n{extra}\r\nFrom=".encode())  # fmt: skip
                    time.sleep(0.05)
        time.sleep(0.5)
        assert httpx.get(f"{url}/healthz").text == "ok"
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "ERROR" not in log and "ClientDisconnect" not in log
    assert len(log.splitlines()) <= 3, log  # start-up lines only: nothing at INFO for a hang-up

"""Real servers for the integration tests: started on free loopback ports, in temporary
directories, stopped afterwards. A missing binary fails the test (run `make servers`), never skips.

Also two small loopback servers of our own: `FaultServer`, an HTTP server whose answer the test
chooses (status, body, delay, an endless body), and `Exporter`, a Prometheus exporter with values
the test sets, so assertions check real numbers that went through a real Prometheus.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def binary(name: str, *patterns: str) -> str:
    """The path of a server binary; fails loudly (with the fix) when it is not installed."""
    found = shutil.which(name) or next((p for pattern in patterns for p in sorted(glob.glob(pattern))), None)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run `make servers` (scripts/install-servers)")
    return found


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout:g} s")


def http_status(url: str, timeout: float = 1.0) -> int | None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


class Process:
    """A server process with its log; `stop()` terminates it (then kills it) and is idempotent."""

    def __init__(self, args: Sequence[str], log: Path, cwd: Path | None = None, user: str | None = None,
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.log_path = log
        self._log = log.open("wb")
        run_as = as_user(user) if user else {}
        self.popen = subprocess.Popen(  # noqa: S603 - fixed argument lists of test servers
            list(args), cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, env=env, **run_as
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, check: Callable[[], bool], timeout: float = 30.0, what: str = "server") -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{what} exited with {self.popen.returncode}:\n{self.tail()}")
            return check()

        try:
            wait_until(ready, timeout, what)
        except TimeoutError as exc:
            self.stop()
            raise TimeoutError(f"{exc}\n{self.tail()}") from exc

    def stop(self) -> None:
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        self._log.close()


def as_user(name: str) -> dict[str, Any]:
    """Popen arguments that drop root to `name` (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(name)

    def demote() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return {"preexec_fn": demote}


def give_to(path: Path, user: str) -> None:
    """Hand a temporary directory to the user a server runs as (when the tests run as root)."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, entry.pw_uid, entry.pw_gid)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, 0o700)


# --- Prometheus -------------------------------------------------------------------------------


@dataclass
class Exporter:
    """A Prometheus exporter on loopback whose values the test sets (the metrics our aliases query)."""

    port: int = field(default_factory=free_port)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ["service"]
        self.memory = Gauge("process_resident_memory_bytes", "rss", labels, registry=self.registry)
        self.cpu = Counter("process_cpu_seconds_total", "cpu", labels, registry=self.registry)
        self.requests = Counter("http_requests_total", "requests", ["service", "code"], registry=self.registry)
        self.latency = Histogram("http_request_duration_seconds", "latency", labels, registry=self.registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5))  # fmt: skip
        self.known = Gauge("operator_test_known_value", "a value the test asserts", ["service"], registry=self.registry)
        self.server, self.thread = start_http_server(self.port, addr=LOOPBACK, registry=self.registry)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class PrometheusServer:
    url: str
    process: Process

    def query(self, expr: str) -> list[dict[str, object]]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=5) as r:
            return list(json.loads(r.read())["data"]["result"])


@contextlib.contextmanager
def prometheus(
    tmp: Path, targets: dict[str, str], scrape_interval: str = "1s", rules: str | None = None,
    alertmanager: str | None = None,
) -> Iterator[PrometheusServer]:  # fmt: skip
    """Prometheus scraping `targets` (service label -> host:port) every second; with `rules` (a rule file's
    text) it evaluates them every second and sends alerts to `alertmanager` (host:port)."""
    port = free_port()
    jobs = "\n".join(
        f"  - job_name: {service}\n    honor_labels: true\n    static_configs:\n      - targets: ['{address}']\n"
        f"        labels: {{service: {service}}}"
        for service, address in targets.items()
    )
    extra = ""
    if rules is not None:
        (tmp / "rules.yml").write_text(rules)
        extra += f"rule_files: [{tmp / 'rules.yml'}]\n"
    if alertmanager is not None:
        extra += f"alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{alertmanager}']\n"
    config = tmp / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: 1s\n{extra}scrape_configs:\n{jobs}\n"
    )
    args = [binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}", "--web.enable-lifecycle", "--log.level=warn"]  # fmt: skip
    process = Process(args, tmp / "prometheus.log", cwd=tmp)
    url = f"http://{LOOPBACK}:{port}"
    try:
        process.wait_ready(lambda: http_status(f"{url}/-/ready") == 200, what="prometheus")
        server = PrometheusServer(url, process)
        wait_until(lambda: len(server.query("up")) >= len(targets), 30, "first scrape")
        yield server
    finally:
        process.stop()


# --- a loopback HTTP server with chosen faults -------------------------------------------------


@dataclass
class Behaviour:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    delay_s: float = 0.0
    endless: bool = False
    """Stream body chunks forever (a "huge response")."""
    seen: list[str] = field(default_factory=list)
    """Paths with query strings, as requested."""


class FaultServer:
    """An HTTP server on loopback that answers however the test says; `hang()` never answers."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                behaviour = server.behaviour
                behaviour.seen.append(self.path)
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                if behaviour.delay_s:
                    time.sleep(behaviour.delay_s)
                try:
                    self.send_response(behaviour.status)
                except OSError:
                    return
                self.send_header("Content-Type", behaviour.content_type)
                if behaviour.endless:
                    self.end_headers()
                    chunk = b'{"x": "' + b"a" * 65536
                    with contextlib.suppress(OSError):
                        for _ in range(100_000):
                            self.wfile.write(chunk)
                    return
                self.send_header("Content-Length", str(len(behaviour.body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may have given up (a hang test)
                    self.wfile.write(behaviour.body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.httpd = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{LOOPBACK}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def answer(self, status: int = 200, body: bytes | str = b"{}", **options: object) -> None:
        raw = body.encode() if isinstance(body, str) else body
        self.behaviour = Behaviour(status=status, body=raw, **options)  # type: ignore[arg-type]

    def hang(self, seconds: float = 30.0) -> None:
        self.behaviour = Behaviour(delay_s=seconds)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def refused_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://{LOOPBACK}:{free_port()}"

"""The reverse-proxy samples, deploy/nginx.conf and deploy/Caddyfile, run for real on loopback (Debian's nginx
and caddy): first in front of an echo server, to see what reaches the bot (the path as Twilio signed it, the
Host, X-Forwarded-For, -Proto and -Host), then in front of `operator serve` with a signed text through them,
and oversized headers and bodies refused before the bot sees them. Only what cannot run here is changed:
addresses and ports, the certificate (self-signed, made by openssl), Caddy's automatic HTTPS."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.bot.appserver import ALICE, PUBLIC_URL, TOKEN, sign
from tests.bot.test_serve import environment, running, signed_config
from tests.deploy.conftest import REPO
from tests.servers import LOOPBACK, Process, binary, free_port

pytestmark = pytest.mark.servers
HOST = "ops.example.com"
"""The sample's host name, public_url's."""


class _Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", "0"))
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items()),
                           "body": len(self.rfile.read(length))}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    server = ThreadingHTTPServer((LOOPBACK, 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=1):
        return True
    return False


def raw(port: int, request: bytes, tls: bool = False) -> bytes:
    """What the proxy answers a raw request (with TLS, for nginx's 443 side)."""
    import ssl

    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((LOOPBACK, port), timeout=10))
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            sock = stack.enter_context(context.wrap_socket(sock, server_hostname=HOST))
        with contextlib.suppress(OSError):
            sock.sendall(request)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                data += chunk
        return data


def bot_refused_too_large(url: str) -> float:
    """How many bodies the bot itself refused as too large (its own metric): none, if the proxy did."""
    for line in httpx.get(f"{url}/metrics", trust_env=False).text.splitlines():
        if line.startswith('operator_rejected_total{reason="too_large"}'):
            return float(line.split()[-1])
    return 0.0


# --- nginx ----------------------------------------------------------------------------------------------------


def nginx_config(folder: Path, upstream: int, https: int, http: int) -> Path:
    """The sample in the http context of a minimal nginx.conf, as Debian's includes conf.d/*.conf."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={HOST}",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    sample = (REPO / "deploy" / "nginx.conf").read_text("utf-8")
    for before, after in [(f"/etc/letsencrypt/live/{HOST}/fullchain.pem", str(folder / "cert.pem")),
                          (f"/etc/letsencrypt/live/{HOST}/privkey.pem", str(folder / "key.pem")),
                          ("127.0.0.1:8000", f"127.0.0.1:{upstream}"),
                          ("listen 443 ssl http2;", f"listen {LOOPBACK}:{https} ssl http2;"),
                          ("listen [::]:443 ssl http2;", ""), ("listen [::]:80;", ""),
                          ("listen 80;", f"listen {LOOPBACK}:{http};")]:  # fmt: skip
        assert before in sample, before
        sample = sample.replace(before, after)
    (folder / "operator.conf").write_text(sample, "utf-8")
    temp = "\n".join(
        f"  {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = folder / "nginx.conf"
    main.write_text(f"{user}pid {folder / 'nginx.pid'};\nerror_log stderr;\nevents {{}}\n"
                    f"http {{\n  access_log off;\n{temp}\n  include {folder / 'operator.conf'};\n}}\n", "utf-8")  # fmt: skip
    return main


@contextlib.contextmanager
def nginx(folder: Path, upstream: int) -> Iterator[tuple[int, int]]:
    https, http = free_port(), free_port()
    main = nginx_config(folder, upstream, https, http)
    executable = binary("nginx", "/usr/sbin/nginx")
    checked = subprocess.run([executable, "-t", "-p", str(folder), "-c", str(main), "-e", "stderr"],
                             capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert checked.returncode == 0 and "test is successful" in checked.stderr, checked.stderr
    process = Process([executable, "-p", str(folder), "-c", str(main), "-e", "stderr", "-g", "daemon off;"],
                      folder / "nginx.log", cwd=folder)  # fmt: skip
    try:
        process.wait_ready(lambda: answers(https) and answers(http), 20, "nginx")
        yield https, http
    finally:
        process.stop()


def nginx_client(https: int) -> httpx.Client:
    return httpx.Client(base_url=f"https://{LOOPBACK}:{https}", headers={"Host": HOST}, verify=False, timeout=30,
                        trust_env=False)  # fmt: skip


def test_nginx_passes_the_path_and_the_forwarding_headers(tmp_path: Path) -> None:
    with echo_server() as upstream, nginx(tmp_path, upstream) as (https, http), nginx_client(https) as client:
        seen = client.post("/sms?x=1", content=b"Body=hi").json()
        assert seen["path"] == "/sms?x=1" and seen["body"] == 7
        headers = {name.lower(): value for name, value in seen["headers"].items()}
        assert headers["host"] == HOST and headers["x-forwarded-host"] == HOST
        assert headers["x-forwarded-proto"] == "https" and headers["x-forwarded-for"] == LOOPBACK
        assert headers["x-real-ip"] == LOOPBACK
        redirect = httpx.get(f"http://{LOOPBACK}:{http}/sms", headers={"Host": HOST}, trust_env=False)
        assert redirect.status_code == 301 and redirect.headers["location"] == f"https://{HOST}/sms"


def test_a_signed_text_through_nginx_and_what_it_refuses(tmp_path: Path) -> None:
    (tmp_path / "bot").mkdir()
    (tmp_path / "nginx").mkdir()
    env = environment(TWILIO_AUTH_TOKEN=TOKEN)
    with running(signed_config(tmp_path / "bot"), tmp_path / "bot", env) as url:
        with nginx(tmp_path / "nginx", int(url.rsplit(":", 1)[1])) as (https, _), nginx_client(https) as client:
            assert PUBLIC_URL == f"https://{HOST}"
            params = {"MessageSid": "SM" + "3" * 32, "From": ALICE, "Body": "cpu"}
            headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(params)}
            text = client.post("/sms", content=urlencode(params), headers=headers)
            assert text.status_code == 200 and "this host cpu" in text.text, text.text
            big = raw(https, f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {'a' * 100 * 1024}\r\n\r\n".encode(),
                      tls=True)  # fmt: skip
            assert big.startswith(b"HTTP/1.1 400 ") and b"Header Or Cookie Too Large" in big
            many = "".join(f"X-Many-{n}: {'m' * 7000}\r\n" for n in range(3))  # 21 KiB, no line over 8 KiB
            assert raw(https, f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\n{many}\r\n".encode(), tls=True).startswith(
                b"HTTP/1.1 400 "
            )
            assert client.post("/sms", content=b"x" * 20_000).status_code == 413  # client_max_body_size 16k
            assert bot_refused_too_large(url) == 0
            assert client.post("/webhooks/alertmanager", content=b"{}").status_code == 401  # the bot's answer
    log = (tmp_path / "bot" / "serve.log").read_text()
    assert "X-Big" not in log and "over max_header_bytes" not in log  # refused before the bot


# --- Caddy ----------------------------------------------------------------------------------------------------


def caddy_env(folder: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(folder), "XDG_DATA_HOME": str(folder / "data"),
            "XDG_CONFIG_HOME": str(folder / "config")}  # fmt: skip


def test_caddy_validates_the_sample(tmp_path: Path) -> None:
    caddy = binary("caddy", "/usr/bin/caddy")
    checked = subprocess.run([caddy, "validate", "--config", str(REPO / "deploy" / "Caddyfile"), "--adapter",
                              "caddyfile"], capture_output=True, text=True, env=caddy_env(tmp_path), check=False,
                             timeout=60)  # fmt: skip
    assert checked.returncode == 0 and "Valid configuration" in checked.stdout + checked.stderr, checked.stderr


@contextlib.contextmanager
def caddy(folder: Path, upstream: int) -> Iterator[int]:
    """The sample on plain HTTP on loopback (automatic HTTPS needs a public name), its limits unchanged."""
    port = free_port()
    sample = (REPO / "deploy" / "Caddyfile").read_text("utf-8")
    for before, after in [("{\n    servers {", "{\n    admin off\n    auto_https off\n    servers {"),
                          (f"\n{HOST} {{\n", f"\nhttp://{HOST}:{port} {{\n    bind {LOOPBACK}\n"),
                          ("reverse_proxy 127.0.0.1:8000", f"reverse_proxy 127.0.0.1:{upstream}")]:  # fmt: skip
        assert before in sample, before
        sample = sample.replace(before, after)
    config = folder / "Caddyfile"
    config.write_text(sample, "utf-8")
    process = Process([binary("caddy", "/usr/bin/caddy"), "run", "--config", str(config), "--adapter", "caddyfile"],
                      folder / "caddy.log", cwd=folder, env=caddy_env(folder))  # fmt: skip
    try:
        process.wait_ready(lambda: answers(port), 20, "caddy")
        yield port
    finally:
        process.stop()


def test_caddy_passes_the_path_and_the_forwarding_headers(tmp_path: Path) -> None:
    with echo_server() as upstream, caddy(tmp_path, upstream) as port:
        seen = httpx.post(f"http://{LOOPBACK}:{port}/sms?x=1", content=b"Body=hi", headers={"Host": HOST},
                          trust_env=False).json()  # fmt: skip
        assert seen["path"] == "/sms?x=1" and seen["body"] == 7
        headers = {name.lower(): value for name, value in seen["headers"].items()}
        assert headers["host"] == HOST and headers["x-forwarded-for"] == LOOPBACK
        assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-host"] == HOST  # https behind TLS


def test_a_signed_text_through_caddy_and_what_it_refuses(tmp_path: Path) -> None:
    (tmp_path / "bot").mkdir()
    (tmp_path / "caddy").mkdir()
    env = environment(TWILIO_AUTH_TOKEN=TOKEN)
    with running(signed_config(tmp_path / "bot"), tmp_path / "bot", env) as url:
        with caddy(tmp_path / "caddy", int(url.rsplit(":", 1)[1])) as port:
            proxy = f"http://{LOOPBACK}:{port}"
            params = {"MessageSid": "SM" + "4" * 32, "From": ALICE, "Body": "cpu"}
            headers = {"Host": HOST, "Content-Type": "application/x-www-form-urlencoded",
                       "X-Twilio-Signature": sign(params)}  # fmt: skip
            text = httpx.post(f"{proxy}/sms", content=urlencode(params), headers=headers, trust_env=False)
            assert text.status_code == 200 and "this host cpu" in text.text, text.text
            big = raw(port, f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {'a' * 100 * 1024}\r\n\r\n".encode())
            assert big.startswith(b"HTTP/1.1 431 ")
            too_much = httpx.post(f"{proxy}/sms", content=b"x" * 20_000, headers={"Host": HOST}, trust_env=False)
            assert too_much.status_code in (413, 502)  # Debian's Caddy 2.6 says 502 for a body over max_size
    log = (tmp_path / "bot" / "serve.log").read_text()
    assert "over max_header_bytes" not in log

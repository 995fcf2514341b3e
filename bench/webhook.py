"""Benchmark of the SMS webhook beside a minimal reference endpoint, measured in the same run.

Both run under uvicorn with one worker on loopback: the bot (`bot.web.app`, signed `help` texts through
the whole path: signature, allowlist, limits, parse, context, command, SMS finishing, history) and a
minimal FastAPI endpoint that only parses the form, checks the signature and returns fixed TwiML.
wrk (Debian's `wrk`) drives both with the same signed request; then the bot soaks for a while and
its memory is compared before and after. Prints figures and the ratio; asserts nothing.

    python -m bench.webhook [--duration 15] [--soak 60] [--connections 16] [--text help]

The documented wrk run, by hand, is the same: start `operator serve` with the bench config
(printed with --show-config), then `wrk -t2 -c16 -d15s -s <script> http://127.0.0.1:PORT/sms`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import httpx
import psutil

TOKEN = "b" * 32
PUBLIC_URL = "https://ops.example.com"
USER = "+15551230001"

REFERENCE_APP = """
from urllib.parse import parse_qsl
from fastapi import FastAPI, Request, Response
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

validator = RequestValidator("{token}")
app = FastAPI()
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>ok</Message></Response>'

@app.post("/sms")
async def sms(request: Request) -> Response:
    params = parse_qsl((await request.body()).decode(), keep_blank_values=True)
    url = "{public_url}" + request.url.path
    if not validator.validate(url, ImmutableMultiDict(params), request.headers.get("x-twilio-signature", "")):
        return Response(status_code=403)
    return Response(TWIML, media_type="application/xml")
"""


def bench_config(folder: Path) -> Path:
    """The bot's config for benchmarks: one operator, the history in `folder`, limits out of the way."""
    config = folder / "operator.yaml"
    config.write_text(
        f"public_url: {PUBLIC_URL}\nusers: {{'{USER}': {{role: operator}}}}\nhistory_path: {folder / 'h.sqlite3'}\n"
        "rate_burst: 100000000\nrate_per_minute: 100000000\nglobal_rate_per_minute: 1000000000\n"
    )
    return config


def signed(text: str) -> tuple[str, str]:
    from starlette.datastructures import ImmutableMultiDict
    from twilio.request_validator import RequestValidator

    # No MessageSid: every request runs the whole path instead of being answered from the
    # idempotency cache (Twilio always sends one; a repeat would be cheaper than this).
    params = [("AccountSid", "AC" + "0" * 32), ("From", USER), ("To", "+15550001111"), ("Body", text)]
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC_URL}/sms", ImmutableMultiDict(params))
    return urlencode(params), str(signature)


def wrk_script(body: str, signature: str, folder: Path) -> Path:
    script = folder / "signed.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.headers["X-Twilio-Signature"] = "{signature}"\n'
    )
    return script


def start(args: list[str], env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[bytes], str]:
    from tests.servers import free_port, http_status, wait_until  # the same loopback helpers as the tests

    port = free_port()
    process = subprocess.Popen([*args, "--port", str(port)], env=env, cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_status(f"{url}/openapi.json") == 200, 60, "server")
    return process, url


def wrk(url: str, script: Path, seconds: int, connections: int, threads: int = 2) -> dict[str, float]:
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), f"{url}/sms"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for name, key in (("p50", "50%"), ("p99", "99%")):
        match = re.search(rf"{key}\s+([\d.]+)(us|ms|s)\b", output)
        if match:
            value, unit = float(match.group(1)), match.group(2)
            figures[name] = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    figures["errors"] = float(errors.group(1)) if errors else 0.0
    if socket:
        figures["errors"] += sum(float(g) for g in socket.groups())
    return figures


def rss_mib(process: subprocess.Popen[bytes]) -> float:
    return float(psutil.Process(process.pid).memory_info().rss) / 2**20


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    options.add_argument("--soak", type=int, default=60, help="seconds of the memory soak (0 to skip)")
    options.add_argument("--connections", type=int, default=16)
    options.add_argument("--text", default="help")
    options.add_argument("--show-config", action="store_true")
    args = options.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    folder = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    config = bench_config(folder)
    if args.show_config:
        print(config.read_text())
    (folder / "reference.py").write_text(REFERENCE_APP.format(token=TOKEN, public_url=PUBLIC_URL))
    body, signature = signed(args.text)
    script = wrk_script(body, signature, folder)
    env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("OPERATOR_CONFIG", None)
    python = sys.executable
    operator = str(Path(python).with_name("operator"))

    reference, reference_url = start([python, "-m", "uvicorn", "reference:app", "--app-dir", str(folder),
                                      "--log-level", "warning", "--no-access-log"], env, folder)  # fmt: skip
    bot, bot_url = start([operator, "serve", "--config", str(config)], env, folder)
    try:
        check = httpx.post(f"{bot_url}/sms", content=body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})  # fmt: skip
        assert check.status_code == 200 and "<Message>" in check.text, check.text
        wrk(reference_url, script, 3, args.connections)  # warm both
        wrk(bot_url, script, 3, args.connections)
        ref = wrk(reference_url, script, args.duration, args.connections)
        ours = wrk(bot_url, script, args.duration, args.connections)
        print(f"reference endpoint: {ref['rps']:8.0f} req/s  p50 {ref.get('p50', 0):6.2f} ms  "
              f"p99 {ref.get('p99', 0):6.2f} ms  errors {ref['errors']:.0f}")  # fmt: skip
        print(f"operator /sms ({args.text}): {ours['rps']:8.0f} req/s  p50 {ours.get('p50', 0):6.2f} ms  "
              f"p99 {ours.get('p99', 0):6.2f} ms  errors {ours['errors']:.0f}")  # fmt: skip
        print(f"ratio: {ours['rps'] / ref['rps']:.0%} of the reference (target >= 60%), one worker each, "
              f"wrk -t2 -c{args.connections} -d{args.duration}s")  # fmt: skip
        if args.soak:
            before = rss_mib(bot)
            soak = wrk(bot_url, script, args.soak, args.connections)
            after = rss_mib(bot)
            print(f"soak {args.soak}s: {soak['rps']:.0f} req/s, errors {soak['errors']:.0f}; "
                  f"RSS {before:.1f} MiB -> {after:.1f} MiB ({(after - before) / before:+.1%})")  # fmt: skip
    finally:
        for process in (bot, reference):
            process.terminate()
            process.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark of alerting: from an alert posted to a real Alertmanager to the Twilio send call, and
the cost of evaluating 1,000 threshold rules.

The bot runs under uvicorn on loopback with Alertmanager (Debian's, group_wait 0) notifying it; the
Twilio REST API is a loopback server that records when each send arrives. Each round posts one new
alert to Alertmanager and waits for the sends (one per recipient). The rules part is
`bench.rules_cost` (the engine alone, and against a real Prometheus). Prints figures only.

    python -m bench.alerts [--alerts 20] [--skip-rules]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench import rules_cost
from tests.bot.appserver import serve, settings_for
from tests.monitors.servers_alertmanager import alertmanager, webhook_receiver
from tests.servers import free_port

HOOK_TOKEN = "bench-" + "t" * 26
SID = "AC" + "0" * 32


class FakeTwilio:
    """A loopback HTTP server that accepts message sends and notes when each arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                    await reader.readexactly(length)
                    self.arrivals.append(time.perf_counter())
                    body = b'{"sid": "SM00000000000000000000000000000000", "status": "queued"}'
                    writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


async def alert_to_send(alerts: int) -> list[float]:
    folder = Path(tempfile.mkdtemp(prefix="operator-alerts-"))
    twilio = FakeTwilio()
    await twilio.start()
    am_port = free_port()
    settings = settings_for(folder, f"monitors: {{alertmanager: {{url: 'http://127.0.0.1:{am_port}'}}}}\n"
                            "alert_budget_texts: 100000\n",
                            TWILIO_API_BASE_URL=twilio.url, OPERATOR_WEBHOOK_TOKEN=HOOK_TOKEN)  # fmt: skip
    latencies: list[float] = []
    async with serve(settings) as bot:
        (folder / "am").mkdir()
        with alertmanager(
            folder / "am",
            webhook_receiver(
                f"{bot.url}/webhooks/alertmanager", group_by=("alertname", "n"), send_resolved=False, token=HOOK_TOKEN
            ),
            port=am_port,
        ) as am:
            recipients = len(settings.users)
            for n in range(alerts):
                before = len(twilio.arrivals)
                posted = time.perf_counter()
                await asyncio.to_thread(am.fire, {"alertname": "BenchAlert", "n": str(n), "severity": "critical"})
                deadline = posted + 10
                while len(twilio.arrivals) < before + recipients and time.perf_counter() < deadline:
                    await asyncio.sleep(0.002)
                if len(twilio.arrivals) >= before + recipients:
                    latencies.append(twilio.arrivals[before + recipients - 1] - posted)
    if twilio.server is not None:
        twilio.server.close()
    return latencies


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_argument("--alerts", type=int, default=20)
    options.add_argument("--skip-rules", action="store_true")
    args = options.parse_args()
    latencies = asyncio.run(alert_to_send(args.alerts))
    if latencies:
        ms = sorted(x * 1000 for x in latencies)
        median = statistics.median(ms)
        print(f"alert posted to Alertmanager -> Twilio send call (all recipients): median {median:.0f} ms, "
              f"max {ms[-1]:.0f} ms over {len(ms)} alerts (target <= 1000 ms; group_wait 0)")  # fmt: skip
    else:
        print("no alert reached the Twilio fake")
    if not args.skip_rules:
        import sys

        sys.argv = [sys.argv[0]]
        rules_cost.main()


if __name__ == "__main__":
    main()

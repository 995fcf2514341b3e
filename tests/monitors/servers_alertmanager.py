"""A real Alertmanager for the adapter's tests: Debian's 0.25 binary on a free loopback port, alone
(no gossip peers), with a receiver that sends nowhere. Tests post alerts to it the way Prometheus
does and clear them afterwards, so one server serves a whole test module.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.servers import LOOPBACK, Process, binary, free_port, http_status

CONFIG = """\
route:
  receiver: nowhere
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: nowhere
"""
"""A receiver with no integrations: alerts are routed and grouped, and no notification leaves."""


def webhook_receiver(
    url: str, *, group_by: tuple[str, ...] = ("alertname",), send_resolved: bool = True, token: str | None = None
) -> str:
    """A config whose one receiver posts every group at once (group_wait 0) to `url`, with a bearer token if
    given: what the bot's own tests and benchmarks point Alertmanager at."""
    auth = f"\n        http_config: {{authorization: {{type: Bearer, credentials: {token}}}}}" if token else ""
    return f"""\
route:
  receiver: bot
  group_by: [{", ".join(group_by)}]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: bot
    webhook_configs:
      - url: {url}
        send_resolved: {str(send_resolved).lower()}{auth}
"""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class AlertmanagerServer:
    url: str
    process: Process

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=5) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def fire(self, labels: Mapping[str, str], ago_s: float = 0.0, summary: str = "") -> None:
        """Posts one alert as Prometheus would: started `ago_s` seconds ago, still firing."""
        alert: dict[str, Any] = {"labels": dict(labels), "startsAt": iso(time.time() - ago_s)}
        if summary:
            alert["annotations"] = {"summary": summary}
        self.call("POST", "/api/v2/alerts", [alert])

    def clear(self) -> None:
        """Resolves every alert and expires every silence, so the next test starts empty."""
        for alert in self.call("GET", "/api/v2/alerts"):
            ended = {"labels": alert["labels"], "startsAt": alert["startsAt"], "endsAt": alert["startsAt"]}
            self.call("POST", "/api/v2/alerts", [ended])
        for silence in self.call("GET", "/api/v2/silences"):
            if silence["status"]["state"] != "expired":
                self.call("DELETE", f"/api/v2/silence/{silence['id']}")


@contextlib.contextmanager
def alertmanager(tmp: Path, config_text: str = CONFIG, port: int | None = None) -> Iterator[AlertmanagerServer]:
    port = port or free_port()
    config = tmp / "alertmanager.yml"
    config.write_text(config_text)
    args = [binary("prometheus-alertmanager", "/usr/bin/alertmanager"), f"--config.file={config}",
            f"--storage.path={tmp / 'data'}", f"--web.listen-address={LOOPBACK}:{port}",
            "--cluster.listen-address=", "--log.level=warn"]  # fmt: skip
    process = Process(args, tmp / "alertmanager.log", cwd=tmp)
    url = f"http://{LOOPBACK}:{port}"
    try:
        process.wait_ready(lambda: http_status(f"{url}/-/ready") == 200, what="alertmanager")
        yield AlertmanagerServer(url, process)
    finally:
        process.stop()

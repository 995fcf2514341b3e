"""Grafana alerting: the open alerts of Grafana's own Alertmanager, and silences made in it.

Grafana-managed alert rules notify through an Alertmanager inside Grafana, which serves the Prometheus
Alertmanager v2 API under `/api/alertmanager/grafana/api/v2` (alerts, silences) behind Grafana's
authentication. So this is `monitors.alertmanager.Alertmanager` with that prefix and a service-account
token (GRAFANA_TOKEN, sent as `Authorization: Bearer`; the account needs the alerting roles to read
alerts and to create and expire silences): the same numbered list, the same silence matching every label
of one alert, the same one-line errors. What differs is said here:

- a created silence is answered 202 (Alertmanager says 200), `{"silenceID": …}` all the same;
- errors come as `{"message": …}` (Grafana's API), which the shared reader already takes;
- an unknown silence is a 404 ("silence not found"), and expiring an expired one a 500 that says so,
  which counts as done;
- health is `GET /api/health` (200 with `{"database": "ok"}`, 503 when Grafana cannot reach its
  database): what Grafana documents for load balancers. It does not prove the token; the firing-alerts
  query that `status` runs beside it does, and without a token nothing is sent at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from monitors.alertmanager import Alertmanager, AlertmanagerConfig
from monitors.base import Alert, Health, Query, Result
from monitors.errors import BadBackendResponse, CredentialsMissing
from monitors.http import parse_json
from monitors.registry import BuildContext

TOKEN_SETTING, TOKEN_ENV = "grafana_token", "GRAFANA_TOKEN"
API = "/api/alertmanager/grafana/api/v2"


class GrafanaConfig(AlertmanagerConfig):
    """`url` is Grafana's root URL (https://grafana.example.com, or with its sub-path if served under one)."""


class Grafana(Alertmanager):
    display = "Grafana"
    system = "grafana"
    api = API
    silence_created = (200, 202)

    def __init__(self, name: str, config: GrafanaConfig, client: httpx.AsyncClient, secrets: Mapping[str, str]) -> None:
        self._token = secrets.get(TOKEN_SETTING, "").strip()
        self.missing = () if self._token else (TOKEN_ENV,)
        super().__init__(name, config, client, {"Authorization": f"Bearer {self._token}"} if self._token else None)

    def _reason(self, body: Any) -> str | None:
        """Grafana's `{"message": …}`, the token taken out before anything is cut or shown."""
        if self._token and isinstance(body, dict) and isinstance(body.get("message"), str):
            body = {**body, "message": body["message"].replace(self._token, "<token>")}
        elif self._token and isinstance(body, str):
            body = body.replace(self._token, "<token>")
        return super()._reason(body)

    async def health(self) -> Health:
        if self.missing:
            return Health(False, f"{TOKEN_ENV} not set")
        status, body = await self.http.request("GET", "/api/health", ok=(200, 503))
        answer = parse_json(self.display, body)
        database = answer.get("database") if isinstance(answer, dict) else None
        if not isinstance(database, str):
            raise BadBackendResponse(self.display, "no database state in answer")
        if status == 200 and database == "ok":
            return Health(True, "ready")
        return Health(False, "database failing")

    async def query(self, request: Query) -> Result:
        self._need_token()
        return await super().query(request)

    async def create_silence(self, alert: Alert, duration_s: int, created_by: str, comment: str) -> str:
        self._need_token()
        return await super().create_silence(alert, duration_s, created_by, comment)

    async def expire_silence(self, silence_id: str) -> None:
        self._need_token()
        await super().expire_silence(silence_id)

    async def silences(self) -> list[dict[str, Any]]:
        self._need_token()
        return await super().silences()

    def _need_token(self) -> None:
        if self.missing:
            raise CredentialsMissing(self.display, self.missing)  # no request is sent without the token


def build(name: str, config: Mapping[str, Any], context: BuildContext) -> Grafana:
    return Grafana(name, GrafanaConfig(**config), context.client, context.secrets)

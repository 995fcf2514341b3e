"""One typed settings object from the YAML config file, a `.env` file and the environment.

The environment wins over `.env`, which wins over the YAML file, so a deployment can override any
key without editing the file. Secrets (Twilio and Datadog credentials, the webhook token) are read
only from the environment: a config file that holds one is refused rather than silently used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import time as time_of_day
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from intents.catalog import DEFAULT_SERVICES, Catalog

DEFAULT_METRICS: dict[str, str] = {
    "cpu": 'avg(rate(process_cpu_seconds_total{service="{service}"}[5m])) * 100',
    "memory": 'avg(process_resident_memory_bytes{service="{service}"})',
    "disk": '100 * (1 - sum(node_filesystem_avail_bytes{service="{service}"})'
    ' / sum(node_filesystem_size_bytes{service="{service}"}))',
    "latency": "histogram_quantile(0.99, sum by (le) "
    '(rate(http_request_duration_seconds_bucket{service="{service}"}[5m])))',
    "error_rate": '100 * sum(rate(http_requests_total{service="{service}",code=~"5.."}[5m]))'
    ' / sum(rate(http_requests_total{service="{service}"}[5m]))',
    "requests": 'sum(rate(http_requests_total{service="{service}"}[5m]))',
    "up": 'min(up{service="{service}"})',
}
"""Built-in metric aliases (the contract requires these seven); `{service}` is a label value."""

SECRET_KEYS = frozenset(
    {"twilio_auth_token", "twilio_account_sid", "datadog_api_key", "datadog_app_key", "webhook_token",
     "operator_webhook_token", "pgbouncer_password", "password", "api_key", "app_key", "token", "secret",
     "aws_secret_access_key", "elasticsearch_api_key", "kong_admin_token", "admin_token", "dashboard_token",
     "dashboard_secret", "operator_dashboard_token", "operator_dashboard_secret"}
)  # fmt: skip


def _default_metrics() -> dict[str, str | MetricSpec]:
    return dict(DEFAULT_METRICS)


def _default_monitors() -> dict[str, dict[str, Any]]:
    return {"host": {}}


_CLOCK_TIME = re.compile(r"(\d{1,2}):(\d{2})")


def parse_quiet_hours(text: str) -> tuple[time_of_day, time_of_day]:
    """ "22:00-07:00" as (22:00, 07:00): from the start, up to (not including) the end, over midnight when
    the end is earlier. Raises ValueError naming the problem: the shape, a time that is not on the clock,
    or an empty span."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"quiet hours {text!r}: expected HH:MM-HH:MM, e.g. 22:00-07:00")
    start, end = (_clock_time(part, text) for part in parts)
    if start == end:
        raise ValueError(f"quiet hours {text!r}: start and end are the same; leave quiet hours out instead")
    return start, end


def _clock_time(part: str, whole: str) -> time_of_day:
    match = _CLOCK_TIME.fullmatch(part.strip())
    if not match:
        raise ValueError(f"quiet hours {whole!r}: {part.strip()!r} is not HH:MM")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ValueError(f"quiet hours {whole!r}: {part.strip()} is not a time of day (00:00 to 23:59)")
    return time_of_day(hour, minute)


class MetricSpec(BaseModel):
    """A metric alias given as a mapping: its PromQL template and extra words people use for it."""

    query: str
    words: list[str] = Field(default_factory=list)


class User(BaseModel):
    name: str = ""
    role: Literal["viewer", "operator"] = "viewer"
    min_severity: Literal["info", "warning", "critical"] = "warning"
    """Alerts below this are not texted to this number."""
    quiet_hours: str | None = Field(None, pattern=r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$")
    """ "22:00-07:00": only critical alerts are texted then (in `timezone`)."""
    timezone: str = "UTC"
    subscribed: bool = True
    """Whether this number gets alert texts until it texts "unsubscribe" (or STOP)."""

    @field_validator("quiet_hours")
    @classmethod
    def _valid_quiet_hours(cls, value: str | None) -> str | None:
        if value:
            parse_quiet_hours(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone") from exc
        return value


class Settings(BaseSettings):
    """Every setting of the bot. Build it with `load_settings`, which gathers file and environment."""

    model_config = SettingsConfigDict(env_prefix="OPERATOR_", extra="ignore", populate_by_name=True)

    services: list[str] = Field(default_factory=lambda: list(DEFAULT_SERVICES))
    metrics: dict[str, str | MetricSpec] = Field(default_factory=lambda: _default_metrics())
    service_aliases: dict[str, list[str]] = Field(default_factory=dict)
    alert_names: list[str] = Field(default_factory=list)
    users: dict[str, User] = Field(default_factory=dict)
    """The allowlist: E.164 number -> name and role."""
    monitors: dict[str, dict[str, Any]] = Field(default_factory=lambda: _default_monitors())
    """A monitor is enabled by its section; the local host is the embedded default."""
    schedules: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """On-call rotations by name (`members`, `shift`, `handoff`, `timezone`); the names are what people
    text ("oncall payments"), so the parser's catalog takes them too."""
    public_url: str | None = None

    context_ttl_s: int = Field(900, ge=1)
    """How long a conversation's context lives after the user's last text (15 minutes)."""
    context_max_users: int = Field(10_000, ge=1)
    """Contexts kept in memory at most; the least recently active are dropped first."""
    reply_budget_s: float = Field(10.0, gt=0, le=14)
    """A command not done by then gets "Working on it" now and its answer later by the REST API."""
    max_segments: int = Field(3, ge=1, le=10)
    """SMS segments per reply; longer answers are paged and served by "more"."""
    allow_emoji: bool = False
    """Emoji force the whole reply into UCS-2 (70 characters a segment), so they are folded away."""
    rate_burst: int = Field(5, ge=1)
    """Texts a number may send at once before the per-number limit applies."""
    rate_per_minute: float = Field(10.0, gt=0)
    """Texts a minute a number may send in the long run."""
    global_rate_per_minute: float = Field(600.0, gt=0)
    """Texts a minute the whole service answers, from everyone together."""
    history_path: Path = Path("operator-history.sqlite3")
    """The SQLite audit file when no DATABASE_URL is set."""
    dev_mode: bool = False
    """Accept unsigned webhooks (only on a loopback bind): for trying the bot locally."""
    bind_host: str = "127.0.0.1"
    """The address `operator serve` listens on (set by serve; checked against dev mode)."""
    log_json: bool = False
    log_level: str = "INFO"
    rules_file: Path | None = None
    """Threshold rules (YAML) evaluated inside `operator serve` against Prometheus."""
    rules_interval_s: float = Field(30.0, gt=0)
    alert_budget_texts: int = Field(10, ge=2)
    """Alert texts a number may get per `alert_budget_window_s`; a storm beyond it becomes one summary."""
    alert_budget_window_s: float = Field(600.0, gt=0)
    undo_window_s: float = Field(300.0, gt=0)
    """How long "undo" can reverse a silence or an ack."""
    datadog_webhook_header: str = "X-Operator-Secret"
    """The header Datadog's webhook must carry with OPERATOR_WEBHOOK_TOKEN (set it in the webhook's custom headers)."""
    status_deadline_s: float = Field(8.0, gt=0, le=14)
    """`status` answers by then with whatever backends have answered (Twilio waits 15 s)."""
    health_cache_ttl_s: float = Field(10.0, ge=0)
    """How long a backend's health answer is reused (and shown with its age)."""
    mms: bool = True
    """Send `graph` charts as MMS pictures (needs `public_url`; Twilio sends MMS to US and Canadian numbers).
    Off, or without a public URL, a chart becomes a text sparkline and the numbers."""
    media_ttl_s: float = Field(900.0, gt=0, le=86_400)
    """How long a chart's unguessable URL serves it (Twilio fetches it once, when it sends the MMS)."""
    graph_width_px: int = Field(800, ge=200, le=2000)
    graph_height_px: int = Field(480, ge=150, le=2000)
    dashboard_users: dict[str, str] = Field(default_factory=dict)
    """Dashboard logins: name -> password hash from `operator dashboard hash-password` (never a password).
    With none, and no OPERATOR_DASHBOARD_TOKEN, /dashboard is closed."""
    dashboard_session_s: float = Field(43_200.0, gt=0)
    """How long a dashboard login lasts (12 hours)."""
    health_sample_s: float = Field(60.0, ge=5)
    """How often backend health is recorded for the dashboard's health history."""
    max_header_bytes: int = Field(16_384, ge=1024, le=1_048_576)
    """Request line and headers of one request, at most; past it the answer is 431 and the connection closes."""
    header_timeout_s: float = Field(10.0, gt=0, le=300)
    """A request's headers must be complete this long after the connection opens (or its next request starts)."""
    body_timeout_s: float = Field(10.0, gt=0, le=300)
    """A request's body must be complete this long after its headers."""
    keep_alive_timeout_s: int = Field(5, ge=1, le=300)
    """An idle keep-alive connection is closed after this long (keep a reverse proxy's own idle time shorter)."""
    max_pending_per_address: int = Field(64, ge=1)
    """Connections one client address may hold open while still sending headers; more are closed at once."""
    max_connections: int = Field(4096, ge=16)
    """Open connections per worker in all; more are closed at once (the open-file limit is raised to fit)."""

    twilio_account_sid: SecretStr | None = Field(None, validation_alias=AliasChoices("TWILIO_ACCOUNT_SID"))
    twilio_auth_token: SecretStr | None = Field(None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN"))
    twilio_from_number: str | None = Field(
        None, validation_alias=AliasChoices("TWILIO_FROM_NUMBER", "twilio_from_number")
    )
    twilio_api_base_url: str = Field(
        "https://api.twilio.com", validation_alias=AliasChoices("TWILIO_API_BASE_URL", "twilio_api_base_url")
    )
    datadog_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("DATADOG_API_KEY"))
    datadog_app_key: SecretStr | None = Field(None, validation_alias=AliasChoices("DATADOG_APP_KEY"))
    webhook_token: SecretStr | None = Field(None, validation_alias=AliasChoices("OPERATOR_WEBHOOK_TOKEN"))
    webhook_basic_user: str | None = None
    """With OPERATOR_WEBHOOK_PASSWORD: Alertmanager may use basic auth instead of the bearer token."""
    webhook_password: SecretStr | None = Field(None, validation_alias=AliasChoices("OPERATOR_WEBHOOK_PASSWORD"))
    pgbouncer_password: SecretStr | None = Field(None, validation_alias=AliasChoices("PGBOUNCER_PASSWORD"))
    elasticsearch_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("ELASTICSEARCH_API_KEY"))
    kong_admin_token: SecretStr | None = Field(None, validation_alias=AliasChoices("KONG_ADMIN_TOKEN"))
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "redis_url"))
    database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL", "database_url"))
    dashboard_token: SecretStr | None = Field(None, validation_alias=AliasChoices("OPERATOR_DASHBOARD_TOKEN"))
    """A bearer token for the dashboard (for scripts and tools; people log in with `dashboard_users`)."""
    dashboard_secret: SecretStr | None = Field(None, validation_alias=AliasChoices("OPERATOR_DASHBOARD_SECRET"))
    """Signs dashboard session cookies; the same on every instance (else derived from TWILIO_AUTH_TOKEN)."""

    @field_validator("services")
    @classmethod
    def _lowercase_services(cls, value: list[str]) -> list[str]:
        return [s.strip().lower() for s in value if s.strip()]

    @field_validator("metrics")
    @classmethod
    def _keep_builtin_metrics(cls, value: dict[str, str | MetricSpec]) -> dict[str, str | MetricSpec]:
        """A config that adds aliases keeps the built-in ones it does not redefine."""
        return {**DEFAULT_METRICS, **value}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # load_settings() gathers file, .env and environment itself

    @property
    def rules_lock_path(self) -> Path:
        """The file whose lock makes one process of this machine the rules evaluator (without Redis):
        beside the SQLite history, hidden, and ignored by git like the history itself."""
        return self.history_path.expanduser().resolve().parent / ".operator-rules.lock"

    def metric_templates(self) -> dict[str, str]:
        """Metric alias -> PromQL template, whichever form the config used."""
        return {alias: spec.query if isinstance(spec, MetricSpec) else spec for alias, spec in self.metrics.items()}

    def secrets(self) -> dict[str, str]:
        """The secrets that are set, by setting name, for the adapters that need them."""
        values = {
            "datadog_api_key": self.datadog_api_key,
            "datadog_app_key": self.datadog_app_key,
            "pgbouncer_password": self.pgbouncer_password,
            "elasticsearch_api_key": self.elasticsearch_api_key,
            "kong_admin_token": self.kong_admin_token,
        }
        return {name: value.get_secret_value() for name, value in values.items() if value is not None}

    def catalog(self) -> Catalog:
        """The parser's vocabulary for this configuration."""
        metrics = {
            alias: spec.model_dump() if isinstance(spec, MetricSpec) else spec for alias, spec in self.metrics.items()
        }
        return Catalog.from_config(
            {
                "services": self.services,
                "metrics": metrics,
                "service_aliases": self.service_aliases,
                "monitors": self.monitors,
                "alert_names": self.alert_names,
                "schedules": self.schedules,
            }
        )


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which file and key."""


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of `os.environ` (tests inject one)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def load_settings(
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    env_file: str | Path | None = ".env",
) -> Settings:
    """Settings from the YAML file (`config_file` or `OPERATOR_CONFIG`), `.env` and the environment."""
    environ = os.environ if environ is None else environ
    path = config_file or environ.get("OPERATOR_CONFIG")
    data: dict[str, Any] = read_config(Path(path)) if path else {}
    if env_file and Path(env_file).is_file():
        data.update(DotEnvSettingsSource(Settings, env_file=env_file)())
    data.update(_MappingEnvSource(Settings, environ)())
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {describe(exc)}") from exc


def describe(error: ValidationError) -> str:
    """Which keys are wrong and why, without echoing the values (they may be secrets or URLs)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in error.errors())


CATALOG_KEYS = ("services", "metrics", "service_aliases", "alert_names", "monitors", "schedules")
"""The config keys the parser's vocabulary comes from."""


def catalog_settings(config_file: str | Path) -> Settings:
    """Settings from only the catalog keys of a config file (for the intent tools)."""
    try:
        data = yaml.safe_load(Path(config_file).read_text("utf-8")) or {}
        return Settings(**{key: data[key] for key in CATALOG_KEYS if isinstance(data, dict) and key in data})
    except ValidationError as exc:
        raise ConfigError(f"invalid catalog in {config_file}: {describe(exc)}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the catalog from {config_file}: {exc}") from exc


def _secret_keys(data: Any, prefix: str = "") -> set[str]:
    """Secret-looking keys anywhere in the file (a monitor's `api_key` too), as dotted paths."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}{key}"
            if str(key).lower() in SECRET_KEYS:
                found.add(path)
            found |= _secret_keys(value, f"{path}.")
    return found


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys")
    secrets = sorted(_secret_keys(data))
    if secrets:
        raise ConfigError(f"config file {path} holds secrets ({', '.join(secrets)}); set them in the environment")
    return data

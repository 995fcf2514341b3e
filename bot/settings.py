"""One typed settings object from the YAML config file, a `.env` file and the environment.

The environment wins over `.env`, which wins over the YAML file, so a deployment can override any
key without editing the file. Secrets (Twilio and Datadog credentials, the webhook token) are read
only from the environment: a config file that holds one is refused rather than silently used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import time as time_of_day
from pathlib import Path
from typing import Any, Literal

import yaml
from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from bot.config_keys import ConfigError as ConfigError
from bot.config_keys import read_config, referenced_variables, unknown_keys, unknown_variables
from bot.oncall.config import Route, Schedule, Step, check_members, check_routes, check_steps, lower_keys, user_names
from bot.sms.numbers import known_region, normalise
from bot.sms.privacy import mask_number, redact_numbers
from intents.catalog import DEFAULT_SERVICES, Catalog
from monitors.keys import describe_errors
from monitors.registry import check_sections

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


def _default_metrics() -> dict[str, str | MetricSpec]:
    return dict(DEFAULT_METRICS)


def _default_monitors() -> dict[str, dict[str, Any]]:
    return {"host": {}}


DEV_RATE_BURST = 30
DEV_RATE_PER_MINUTE = 60.0
"""The per-number limit in dev mode (loopback only), unless `rate_burst` / `rate_per_minute` are set."""

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

    model_config = ConfigDict(extra="forbid")

    query: str
    words: list[str] = Field(default_factory=list)


class User(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    default_region: str | None = None
    """Where numbers written without a country code are dialled ("US", "GB"): lets allowlist keys read
    "(555) 123-0001". Without it every key needs its `+` (or `00`) and country code."""
    users: dict[str, User] = Field(default_factory=dict)
    """The allowlist: number -> name and role. Keys in any usual format, held in E.164 (what Twilio sends)."""
    monitors: dict[str, dict[str, Any]] = Field(default_factory=lambda: _default_monitors())
    """A monitor is enabled by its section; the local host is the embedded default."""
    schedules: dict[str, Schedule] = Field(default_factory=dict)
    """On-call rotations by name (`members`, `shift`, `handoff`, `timezone`); the names are what people
    text ("oncall payments"), so the parser's catalog takes them too."""
    escalation: dict[str, list[Step]] = Field(default_factory=dict)
    """Escalation policies by name: steps in order (bot/oncall/config.py). Without any, alerts are broadcast."""
    routes: list[Route] = Field(default_factory=list)
    """Which policy an alert follows, by its labels; unmatched alerts follow the policy named `default`."""
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
    """The header Datadog's webhook (and New Relic's, unless it sends a bearer token) carries the webhook token in."""
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
    new_relic_api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("NEW_RELIC_API_KEY"))
    grafana_token: SecretStr | None = Field(None, validation_alias=AliasChoices("GRAFANA_TOKEN"))
    """A Grafana service-account token: the `grafana` monitor's alerts and silences."""
    twilio_messaging_service_sid: SecretStr | None = Field(
        None, validation_alias=AliasChoices("TWILIO_MESSAGING_SERVICE_SID")
    )
    """Outbound texts go through this Messaging Service (MG…) instead of TWILIO_FROM_NUMBER when set."""
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

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is not None and not known_region(value):
            raise PydanticCustomError("region", "not a region code such as US, GB or DE")
        return value.upper() if value else None

    @field_validator("users")
    @classmethod
    def _numbers_in_e164(cls, value: dict[str, User], info: ValidationInfo) -> dict[str, User]:
        """Each key as E.164, so it matches what Twilio sends; a key that is no phone number is refused by
        its position (the key itself may be a typo of someone's real number: it is not echoed)."""
        region = info.data.get("default_region")
        users: dict[str, User] = {}
        seen: dict[str, int] = {}
        for position, (written, user) in enumerate(value.items(), 1):
            number = normalise(written, region)
            if number is None:
                digits = sum(c.isdigit() for c in written)
                national = not region and digits >= 7 and not written.strip().startswith(("+", "00"))
                hint = " (without a + and country code it needs default_region, e.g. US)" if national else ""
                raise PydanticCustomError("phone_number", f"entry {position} is not a phone number{hint}")
            if number in seen:
                raise PydanticCustomError("phone_number", f"entries {seen[number]} and {position} are the same number")
            seen[number] = position
            users[number] = user
        return users

    @field_validator("schedules", "escalation", mode="before")
    @classmethod
    def _lowercase_names(cls, value: Any) -> Any:
        return lower_keys(value)

    @field_validator("schedules")
    @classmethod
    def _known_members(cls, value: dict[str, Schedule], info: ValidationInfo) -> dict[str, Schedule]:
        if "users" in info.data:
            check_members(value, user_names(u.name for u in info.data["users"].values()))
        return value

    @field_validator("escalation")
    @classmethod
    def _known_targets(cls, value: dict[str, list[Step]], info: ValidationInfo) -> dict[str, list[Step]]:
        if "users" in info.data and "schedules" in info.data:
            check_steps(value, info.data["schedules"], user_names(u.name for u in info.data["users"].values()))
        return value

    @field_validator("routes")
    @classmethod
    def _known_policies(cls, value: list[Route], info: ValidationInfo) -> list[Route]:
        if "escalation" in info.data:
            check_routes(value, info.data["escalation"])
        return value

    @field_validator("metrics")
    @classmethod
    def _keep_builtin_metrics(cls, value: dict[str, str | MetricSpec]) -> dict[str, str | MetricSpec]:
        """A config that adds aliases keeps the built-in ones it does not redefine."""
        return {**DEFAULT_METRICS, **value}

    @model_validator(mode="after")
    def _dev_rate_limits(self) -> Settings:
        """Dev mode is one person trying the README's examples on loopback: the production limit (5 at once,
        10 a minute) would stop them after five texts. Unless set explicitly, it allows DEV_RATE_BURST at
        once and DEV_RATE_PER_MINUTE a minute (`operator serve --dev` says so at start)."""
        if self.dev_mode:
            if "rate_burst" not in self.model_fields_set:
                self.rate_burst = DEV_RATE_BURST
            if "rate_per_minute" not in self.model_fields_set:
                self.rate_per_minute = DEV_RATE_PER_MINUTE
        return self

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
            "new_relic_api_key": self.new_relic_api_key,
            "grafana_token": self.grafana_token,
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
    """Settings from the YAML file (`config_file` or `OPERATOR_CONFIG`), `.env` and the environment.

    A key nobody would read is refused with the closest valid one: in the file ("unknown key monitrs (did
    you mean monitors?)"), in a user entry or metric, and among OPERATOR_* variables of the environment
    and `.env`, which must each be a real setting."""
    environ = os.environ if environ is None else environ
    path = config_file or environ.get("OPERATOR_CONFIG")
    data: dict[str, Any] = read_config(Path(path)) if path else {}
    problems = [f"config file {path}: {line}" for line in unknown_keys(Settings, data)]
    dotenv: Mapping[str, str | None] = {}
    if env_file and Path(env_file).is_file():
        dotenv = dotenv_values(env_file)
        data.update(DotEnvSettingsSource(Settings, env_file=env_file)())
    referenced = referenced_variables(data)
    problems += [f"{env_file}: {line}" for line in unknown_variables(Settings, dotenv, referenced)]
    problems += unknown_variables(Settings, environ, referenced)
    if problems:
        raise ConfigError("; ".join(problems))
    data.update(_MappingEnvSource(Settings, environ)())
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {describe(exc)}") from exc
    problems = check_sections(settings.monitors, settings.metric_templates(), settings.secrets())
    if problems:
        raise ConfigError("; ".join(problems))
    return settings


def describe(error: ValidationError) -> str:
    """Which keys are wrong and why, without echoing the values (they may be secrets or URLs); unknown
    keys with the closest valid one; allowlist numbers in a path masked."""
    return redact_numbers("; ".join(describe_errors(error, Settings, show=_masked_user)))


def _masked_user(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """users.+15551230001.nmae -> users.+1555***0001.nmae: a start-up error is a log line too."""
    if len(loc) > 1 and loc[0] == "users":
        key = str(loc[1])
        digits = re.sub(r"\D", "", key)
        if len(digits) >= 7:  # enough to call someone: masked, even when it is not a valid number
            key = mask_number(normalise(key) or ("+" if key.strip().startswith("+") else "") + digits)
        return ("users", key, *loc[2:])
    return tuple(loc)


CATALOG_KEYS = ("services", "metrics", "service_aliases", "alert_names", "monitors", "schedules")
"""The config keys the parser's vocabulary comes from."""


def catalog_settings(config_file: str | Path) -> Settings:
    """Settings from only the catalog keys of a config file (for the intent tools)."""
    try:
        data = yaml.safe_load(Path(config_file).read_text("utf-8")) or {}
        chosen = {key: data[key] for key in CATALOG_KEYS if isinstance(data, dict) and key in data}
        # Schedules are checked for their shape only: their members name users this file's users: may not give.
        schedules = TypeAdapter(dict[str, Schedule]).validate_python(lower_keys(chosen.pop("schedules", None) or {}))
        return Settings(**chosen).model_copy(update={"schedules": schedules})
    except ValidationError as exc:
        raise ConfigError(f"invalid catalog in {config_file}: {describe(exc)}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the catalog from {config_file}: {exc}") from exc

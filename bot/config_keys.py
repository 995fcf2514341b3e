"""Keys of the config file: secrets refused there, and keys or OPERATOR_* variables that no setting reads,
named with the closest valid one.

`load_settings` refuses them at start: "unknown key monitrs (did you mean monitors?)", "unknown
environment variable OPERATOR_RATE_BURTS (did you mean OPERATOR_RATE_BURST?)". Nested keys (a user's
entry, a metric, a monitor's section) are the models' own business (`extra="forbid"`, worded by
`monitors.keys`). The settings class is passed in, so this module needs nothing from `bot.settings`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, BaseModel

from monitors.keys import closest

RESERVED_KEYS = frozenset({"escalation", "routes"})
"""Top-level keys of the on-call configuration, being added beside `schedules`: accepted, never "unknown"."""
OTHER_VARIABLES = frozenset({"OPERATOR_CONFIG", "OPERATOR_HISTORY"})
"""OPERATOR_* variables that are not settings: the config file's path, the intents REPL's history file."""


def _aliases(model: type[BaseModel], name: str) -> list[str]:
    alias = model.model_fields[name].validation_alias
    return [c for c in alias.choices if isinstance(c, str)] if isinstance(alias, AliasChoices) else []


def top_level_keys(model: type[BaseModel]) -> set[str]:
    """What a config file may hold at the top: setting names, their aliases, the reserved on-call keys."""
    keys = set(model.model_fields) | RESERVED_KEYS
    for name in model.model_fields:
        keys |= set(_aliases(model, name))
    return keys


def unknown_keys(model: type[BaseModel], data: Mapping[str, Any]) -> list[str]:
    """ "unknown key monitrs (did you mean monitors?)" for each top-level key no setting reads."""
    valid = top_level_keys(model)
    return [_unknown(f"unknown key {key}", str(key), valid) for key in data if str(key) not in valid]


def variable_names(model: type[BaseModel]) -> set[str]:
    """The environment's names for the settings: OPERATOR_<KEY>, or a setting's own (TWILIO_AUTH_TOKEN)."""
    names = set(OTHER_VARIABLES) | {f"OPERATOR_{key.upper()}" for key in RESERVED_KEYS}
    for name in model.model_fields:
        aliases = _aliases(model, name)
        names |= {a.upper() for a in aliases} if aliases else {f"OPERATOR_{name.upper()}"}
    return names


def unknown_variables(
    model: type[BaseModel], environ: Mapping[str, str | None], referenced: Collection[str] = ()
) -> list[str]:
    """OPERATOR_* variables that are no setting (nor named by a custom monitor's `headers_env`)."""
    valid = variable_names(model)
    known = valid | {name.upper() for name in referenced}
    ours = [v for v in valid if v.startswith("OPERATOR_")]
    return [
        _unknown(f"unknown environment variable {variable}", variable.upper(), ours)
        for variable in environ
        if variable.upper().startswith("OPERATOR_") and variable.upper() not in known
    ]


def referenced_variables(data: Mapping[str, Any]) -> set[str]:
    """Variables a custom HTTP monitor reads its headers from (`headers_env`), which may be named anything."""
    names: set[str] = set()
    monitors = data.get("monitors")
    for section in monitors.values() if isinstance(monitors, dict) else ():
        headers = section.get("headers_env") if isinstance(section, dict) else None
        if isinstance(headers, dict):
            names |= {str(v) for v in headers.values()}
    return names


def _unknown(what: str, word: str, valid: Collection[str]) -> str:
    guess = closest(word, valid)
    return what + (f" (did you mean {guess}?)" if guess else "")


SECRET_KEYS = frozenset(
    {"twilio_auth_token", "twilio_account_sid", "datadog_api_key", "datadog_app_key", "webhook_token",
     "new_relic_api_key", "twilio_messaging_service_sid", "grafana_token",
     "operator_webhook_token", "pgbouncer_password", "password", "api_key", "app_key", "token", "secret",
     "aws_secret_access_key", "elasticsearch_api_key", "kong_admin_token", "admin_token", "dashboard_token",
     "dashboard_secret", "operator_dashboard_token", "operator_dashboard_secret"}
)  # fmt: skip


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which file and key."""


def secret_keys(data: Any, prefix: str = "") -> set[str]:
    """Secret-looking keys anywhere in the file (a monitor's `api_key` too), as dotted paths."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}{key}"
            if str(key).lower() in SECRET_KEYS:
                found.add(path)
            found |= secret_keys(value, f"{path}.")
    return found


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys")
    secrets = sorted(secret_keys(data))
    if secrets:
        raise ConfigError(f"config file {path} holds secrets ({', '.join(secrets)}); set them in the environment")
    return data

"""operator.example.yaml and .env.example, the two files a new user copies: between them every setting is
documented, secrets only in .env.example, the example loads with `operator`, and its placeholders are
refused rather than used."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from bot.settings import Settings, load_settings
from tests.deploy.conftest import REPO

OPERATOR = str(Path(sys.executable).with_name("operator"))
SET_BY_FLAGS = {"dev_mode": "operator serve --dev", "bind_host": "operator serve --host"}
EXAMPLES = {
    "public_url",
    "users",
    "default_region",
    "metrics",
    "service_aliases",
    "alert_names",
    "monitors",
    "schedules",
    "escalation",
    "routes",
}
"""The keys operator.example.yaml shows an example of, rather than their default."""


def example() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "operator.example.yaml").read_text("utf-8"))
    return data


def env_example_names() -> tuple[set[str], set[str]]:
    """The variables .env.example sets, and those it shows commented out."""
    live, commented = set(), set()
    for line in (REPO / ".env.example").read_text("utf-8").splitlines():
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=.*", line):
            live.add(match[1])
        elif match := re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=.*", line):
            commented.add(match[1])
    return live, commented


def variables_of(name: str) -> set[str]:
    """The environment variables a setting is read from (its own names, else OPERATOR_<NAME>)."""
    choices = getattr(Settings.model_fields[name].validation_alias, "choices", None)
    return {str(c) for c in choices if str(c).isupper()} if choices else {f"OPERATOR_{name.upper()}"}


def is_env_only(name: str) -> bool:
    """A setting read only from the environment: the secrets (a file holding one is refused)."""
    choices = getattr(Settings.model_fields[name].validation_alias, "choices", None)
    return bool(choices) and all(str(c).isupper() for c in choices)


def test_every_setting_is_in_one_of_the_two_examples() -> None:
    in_yaml = set(example())
    live, commented = env_example_names()
    in_env = {name for name in Settings.model_fields if variables_of(name) & (live | commented)}
    assert in_yaml <= set(Settings.model_fields), f"not settings: {in_yaml - set(Settings.model_fields)}"
    missing = set(Settings.model_fields) - in_yaml - in_env - set(SET_BY_FLAGS)
    assert not missing, f"settings documented in neither operator.example.yaml nor .env.example: {sorted(missing)}"
    assert not in_yaml & in_env, "each setting in one place"
    secrets = {name for name in Settings.model_fields if is_env_only(name)}
    assert secrets <= in_env and not secrets & in_yaml


def test_the_yaml_example_shows_the_defaults_and_every_key_has_a_comment() -> None:
    defaults = Settings()
    for key, value in example().items():
        default = getattr(defaults, key)
        if key not in EXAMPLES:
            assert value == (str(default) if isinstance(default, Path) else default), key
    text = (REPO / "operator.example.yaml").read_text("utf-8")
    for key in example():
        line = next(line for line in text.splitlines() if line.startswith(f"{key}:"))
        before = text.splitlines()[text.splitlines().index(line) - 1]
        assert "#" in line or before.startswith("#"), f"{key} has no comment"


def test_the_env_example_is_read_alike_by_compose_systemd_and_operator() -> None:
    for line in (REPO / ".env.example").read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and "#" not in value and " " not in value, line
            assert not value.startswith(("'", '"')), line
    live, _ = env_example_names()
    environ = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text("utf-8").splitlines()
                   if line and not line.startswith("#"))  # fmt: skip
    settings = load_settings(REPO / "operator.example.yaml", environ=environ, env_file=None)
    assert settings.twilio_from_number == environ["TWILIO_FROM_NUMBER"] and settings.webhook_token is not None
    assert set(environ) == live


def test_the_example_loads_with_operator(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OPERATOR_", "DATABASE_URL", "REDIS_URL"))
    }
    chat = subprocess.run([OPERATOR, "chat", "--config", str(REPO / "operator.example.yaml")], input="help\n",
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False)  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    assert "status" in chat.stdout and "Traceback" not in chat.stderr


def test_the_placeholders_are_refused(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((REPO / ".env.example").read_text("utf-8"), "utf-8")  # copied, not edited
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "OPERATOR_", "DATABASE_URL", "REDIS_URL"))
    }
    serve = subprocess.run([OPERATOR, "serve", "--config", str(REPO / "operator.example.yaml"), "--port", "1"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False)  # fmt: skip
    assert serve.returncode != 0 and "TWILIO_AUTH_TOKEN is missing or a placeholder" in serve.stderr
    assert "Traceback" not in serve.stderr

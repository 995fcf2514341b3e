from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "operator.yaml"
    path.write_text(text, "utf-8")
    return path


def test_embedded_defaults(tmp_path: Path) -> None:
    settings = load_settings(environ={}, env_file=None)
    assert settings.services == ["payment", "checkout", "auth", "search", "cart", "inventory", "api", "web"]
    assert {"cpu", "memory", "disk", "latency", "error_rate", "requests", "up"} <= set(settings.metrics)
    assert settings.monitors == {"host": {}}
    assert settings.context_ttl_s == 900 and settings.context_max_users == 10_000


def test_file_then_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "services: [Billing, ledger]\ncontext_ttl_s: 60\npublic_url: https://a.example\n")
    settings = load_settings(path, environ={"OPERATOR_CONTEXT_TTL_S": "120", "REDIS_URL": "redis://127.0.0.1:6379/0"},
                             env_file=None)  # fmt: skip
    assert settings.services == ["billing", "ledger"]
    assert settings.context_ttl_s == 120  # the environment wins
    assert settings.public_url == "https://a.example"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "services: [ledger]\n")
    assert load_settings(environ={"OPERATOR_CONFIG": str(path)}, env_file=None).services == ["ledger"]


def test_dotenv_file_sits_between_file_and_environment(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("OPERATOR_CONTEXT_TTL_S=30\nTWILIO_AUTH_TOKEN=from-dotenv\n", "utf-8")
    settings = load_settings(write(tmp_path, "context_ttl_s: 10\n"), environ={}, env_file=dotenv)
    assert settings.context_ttl_s == 30
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "from-dotenv"
    assert "from-dotenv" not in repr(settings)


def test_secrets_only_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "twilio_auth_token: hunter2\n")
    with pytest.raises(ConfigError, match="secrets") as caught:
        load_settings(path, environ={}, env_file=None)
    assert "hunter2" not in str(caught.value)
    env = load_settings(environ={"TWILIO_AUTH_TOKEN": "hunter2", "DATADOG_API_KEY": "k"}, env_file=None)
    assert env.twilio_auth_token is not None and env.twilio_auth_token.get_secret_value() == "hunter2"


@pytest.mark.parametrize(
    "text",
    ["services: [a\n", "- just\n- a list\n", "context_ttl_s: -5\n", 'users: {"+1555": {role: admin}}\n'],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(write(tmp_path, text), environ={}, env_file=None)


def test_errors_name_the_key_but_never_echo_values(tmp_path: Path) -> None:
    path = write(tmp_path, 'users: {"+1555": {role: "hunter2-admin"}}\ncontext_ttl_s: "http://10.0.0.5/secret"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={}, env_file=None)
    message = str(caught.value)
    assert "users.+1555.role" in message and "context_ttl_s" in message
    assert "hunter2" not in message and "10.0.0.5" not in message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.yaml", environ={}, env_file=None)


def test_catalog_follows_the_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "services: [billing]\n"
        "metrics:\n  queue_depth: {query: 'sum(q{service=\"{service}\"})', words: [backlog]}\n"
        "monitors: {orders_api: {type: http, url: 'http://127.0.0.1:1'}}\n"
        "alert_names: [LedgerLag]\n",
    )
    catalog = load_settings(path, environ={}, env_file=None).catalog()
    assert catalog.services == ("billing",)
    assert "backlog" in catalog.metrics["queue_depth"]
    assert "cpu" in catalog.metrics  # built-in aliases stay
    assert "orders_api" in catalog.systems
    assert "LedgerLag" in catalog.alert_names

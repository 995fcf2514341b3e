"""Misspelled config keys are refused at start, by path, with the closest valid key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings
from monitors.registry import ADAPTERS, check_sections
from tests.bot.test_serve import environment

OPERATOR = str(Path(sys.executable).with_name("operator"))


def load(tmp_path: Path, text: str, **environ: str) -> None:
    path = tmp_path / "operator.yaml"
    path.write_text(text, "utf-8")
    load_settings(path, environ=environ, env_file=None)


def refusal(tmp_path: Path, text: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, **environ)
    return str(caught.value)


def test_a_misspelled_top_level_key(tmp_path: Path) -> None:
    message = refusal(tmp_path, "monitrs:\n  prometheus: {url: 'http://127.0.0.1:9090'}\n")
    assert message == f"config file {tmp_path / 'operator.yaml'}: unknown key monitrs (did you mean monitors?)"


def test_a_key_like_nothing_gets_no_guess(tmp_path: Path) -> None:
    assert refusal(tmp_path, "zzzqqq: 1\n").endswith(": unknown key zzzqqq")


def test_a_misspelled_monitor_key(tmp_path: Path) -> None:
    message = refusal(tmp_path, "monitors:\n  prometheus: {url: 'http://10.0.0.9:9090', timout_s: 10}\n")
    assert message == "monitors.prometheus.timout_s: unknown (did you mean timeout_s?)"


def test_a_misspelled_monitor_type(tmp_path: Path) -> None:
    message = refusal(tmp_path, "monitors:\n  prom_eu: {type: promethues, url: 'http://x:9090'}\n")
    assert message == "monitor 'prom_eu': unknown type 'promethues' (did you mean prometheus?)"


MINIMAL = {
    "prometheus": {"url": "http://127.0.0.1:9090"},
    "alertmanager": {"url": "http://127.0.0.1:9093"},
    "pgbouncer": {"dsn": "postgresql://opsbot@127.0.0.1:6432/pgbouncer"},
    "loki": {"url": "http://127.0.0.1:3100"},
    "elasticsearch": {"url": "http://127.0.0.1:9200"},
    "datadog": {},
    "kong": {"url": "http://127.0.0.1:8001"},
    "cloudwatch": {"region": "eu-west-1", "log_group": "/app/prod"},
    "apigateway": {"region": "eu-west-1"},
    "http": {"url": "http://127.0.0.1:8080/health"},
    "host": {},
    "newrelic": {"account_id": 1234567},  # with the New Relic adapter (another branch)
    "grafana": {"url": "http://127.0.0.1:3000"},
}


@pytest.mark.parametrize("backend", sorted(ADAPTERS))
def test_every_adapter_refuses_a_misspelled_key(backend: str) -> None:
    assert check_sections({"it": {"type": backend, **MINIMAL[backend]}}) == []
    problems = check_sections({"it": {"type": backend, **MINIMAL[backend], "timout_s": 3}})
    assert problems == ["monitors.it.timout_s: unknown (did you mean timeout_s?)"]


def test_a_misspelled_user_key_masks_the_number(tmp_path: Path) -> None:
    message = refusal(tmp_path, 'users:\n  "+1 555 123 0001": {nmae: alice, role: operator}\n')
    assert message == "invalid configuration: users.+1555***0001.nmae: unknown (did you mean name?)"


def test_a_misspelled_metric_key(tmp_path: Path) -> None:
    message = refusal(tmp_path, "metrics:\n  queue: {query: 'sum(q)', wrods: [backlog]}\n")
    assert message == "invalid configuration: metrics.queue.wrods: unknown (did you mean words?)"


def test_the_on_call_keys_are_not_unknown(tmp_path: Path) -> None:
    load(tmp_path, "schedules: {}\nescalation: {}\nroutes: []\n")


def test_environment_variables_must_be_real_settings(tmp_path: Path) -> None:
    message = refusal(tmp_path, "", OPERATOR_RATE_BURTS="3")
    assert message == "unknown environment variable OPERATOR_RATE_BURTS (did you mean OPERATOR_RATE_BURST?)"
    load(tmp_path, "", OPERATOR_RATE_BURST="3", OPERATOR_WEBHOOK_TOKEN="t" * 32, OPERATOR_HISTORY="/tmp/h",
         OPERATOR_USERS=json.dumps({"+15551230001": {"name": "alice"}}), TWILIO_FROM_NUMBER="+15550001111",
         HOME="/root", SOMETHING_ELSE="1")  # fmt: skip


def test_a_custom_monitors_header_variable_may_have_our_prefix(tmp_path: Path) -> None:
    config = "monitors:\n  orders: {type: http, url: 'http://x/h', headers_env: {X-Token: OPERATOR_ORDERS_TOKEN}}\n"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, config, OPERATOR_ORDERS_TOKEN="abc")
    assert "unknown environment variable" not in str(caught.value)  # (the value is read from os.environ)


def test_dotenv_variables_too(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("OPERATOR_MAX_SEGMENT=2\nUNRELATED=1\n", "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, env_file=dotenv)
    assert (
        str(caught.value)
        == f"{dotenv}: unknown environment variable OPERATOR_MAX_SEGMENT (did you mean OPERATOR_MAX_SEGMENTS?)"
    )


def test_serve_refuses_in_one_line_before_binding(tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text("monitors:\n  prometheus: {url: 'http://127.0.0.1:9090', timout_s: 10}\n", "utf-8")
    result = subprocess.run([OPERATOR, "serve", "--dev", "--config", str(config), "--port", "9"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30, check=False, env=environment())  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: monitors.prometheus.timout_s: unknown (did you mean timeout_s?)"
    ]
    assert list(tmp_path.iterdir()) == [config]  # no history created, nothing started


def test_a_mistyped_number_in_an_error_path_is_masked_too(tmp_path: Path) -> None:
    message = refusal(tmp_path, 'users:\n  "+1555123000": {role: admin}\n')
    assert message == "invalid configuration: users.+1555***3000.role: Input should be 'viewer' or 'operator'"


def test_the_readme_configuration_loads_as_printed(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    block = readme.split("## Configuration", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "operator.yaml"
    path.write_text(block, "utf-8")
    settings = load_settings(path, environ={}, env_file=None)
    assert list(settings.users) == ["+15551230001", "+15551230002"]
    assert {"prometheus", "orders_api", "prom_eu", "host"} <= set(settings.monitors)

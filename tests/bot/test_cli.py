"""The `operator` console script. Most tests call its click commands in-process (click's `CliRunner`, with
stdin, stdout, stderr and the exit code as a user sees them); the ones marked `as_user` run the
installed script in a real subprocess with pipes, proving the entry point itself. A subprocess costs ~2 s
of start-up (spaCy, SQLAlchemy) that the edit-test loop need not pay for every case."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from bot.cli.main import main

OPERATOR = str(Path(sys.executable).with_name("operator"))


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def operator(*args: str, stdin: str = "", as_user: bool = False, timeout: float = 60) -> Ran:
    """`operator ARGS` with `stdin` piped in: the real script when `as_user`, else its commands in-process."""
    if as_user:
        done = subprocess.run([OPERATOR, *args], input=stdin, capture_output=True, text=True, timeout=timeout,
                              check=False)  # fmt: skip
        return Ran(done.returncode, done.stdout, done.stderr)
    result = CliRunner().invoke(main, list(args), input=stdin, prog_name="operator")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception  # a crash is a failure here, not an exit code
    return Ran(result.exit_code, result.stdout, result.stderr)


def test_parse_jsonl_keeps_per_user_context_and_alignment() -> None:
    lines = [
        {"user": "+15551230001", "text": "logs service=payment level=error"},
        {"user": "+15551230002", "text": "cpu on checkout"},
        "this is not json",
        {"user": "+15551230001", "text": "what about checkout?"},
        {"user": "+15551230002", "text": "and the last 6 hours"},
        {"user": "+15551230003"},
    ]
    stdin = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    result = operator("intents", "parse", "--jsonl", stdin=stdin)
    assert result.returncode == 0, result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(outputs) == len(lines)
    assert outputs[0]["command"] == "logs service=payment level=error"
    assert outputs[2]["intent"] == "unknown" and "error" in outputs[2]
    assert outputs[3] == {
        "intent": "logs",
        "slots": {"service": "checkout", "level": "error", "terms": []},
        "command": "logs service=checkout level=error",
        "confidence": 0.8,
        "source": "context",
    }
    assert outputs[4]["command"] == "metrics cpu service=checkout range=6h"
    assert "error" in outputs[5]


def test_parse_jsonl_uses_the_config_catalog(tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text("services: [billing, ledger]\n", "utf-8")
    stdin = (
        json.dumps({"user": "+1", "text": "billing errors"})
        + "\n"
        + json.dumps({"user": "+2", "text": "payment errors"})
    )
    result = operator("intents", "parse", "--config", str(config), "--jsonl", stdin=stdin)
    billing, payment = (json.loads(line) for line in result.stdout.splitlines())
    assert billing["slots"]["service"] == "billing"
    assert "service" not in payment["slots"]  # not a configured service any more


def test_intents_test_reports_and_enforces_the_threshold(tmp_path: Path) -> None:
    cases = tmp_path / "cases.jsonl"
    good = {
        "id": "a",
        "user": "+1",
        "text": "db conns?",
        "expect": {"intent": "db", "slots": {"metric": "connections"}},
    }
    bad = {"id": "b", "user": "+2", "text": "status", "expect": {"intent": "help", "slots": {}}}
    cases.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", "utf-8")
    result = operator("intents", "test", str(cases), "--failures")
    assert result.returncode == 0
    assert "joint accuracy   50.0%" in result.stdout
    assert "help         -> status" in result.stdout
    assert "b: 'status'" in result.stdout
    failing = operator("intents", "test", str(cases), "--min-joint", "0.9")
    assert failing.returncode == 1
    assert "below 90.0%" in failing.stderr


def test_intents_test_refuses_missing_files(tmp_path: Path) -> None:
    result = operator("intents", "test", str(tmp_path / "nope.jsonl"))
    assert result.returncode != 0
    assert "no such case file" in result.stderr
    assert "Traceback" not in result.stderr


def test_repl_shows_every_stage_and_its_commands() -> None:
    script = "chekout latncy last 6h\nwhat about auth?\n:context\n:user +15551230009\nwhat about auth?\n:reset\n:quit\n"
    result = operator("intents", stdin=script)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "corrected   chekout->checkout, latncy->latency" in out
    assert "entities    SERVICE 'chekout'=checkout | METRIC 'latncy'=latency | DURATION '6h'=21600" in out
    assert "scores      metrics" in out
    assert "=> metrics latency service=checkout range=6h   [nl," in out
    assert "=> metrics latency service=auth range=6h   [context," in out
    assert "from ctx    intent" in out
    assert "user is now +15551230009" in out
    assert "=> unknown" in out  # the new user has no context
    assert "context cleared" in out


def test_chat_from_a_pipe_on_embedded_defaults() -> None:
    result = operator(
        "chat", stdin="status\ncpu on checkout\nwhat about memory?\n\nany payment errors?\n", as_user=True
    )
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("---\n")
    assert len(blocks) == 6 and blocks[-1] == ""
    assert blocks[0] == "1/1 backends ok: Host\n"  # the local host is the default monitor
    assert blocks[1].startswith("this host cpu: ") and "no per-service data for checkout" in blocks[1]
    assert blocks[2].startswith("[checkout] this host memory: ")  # a follow-up, saying what it assumed
    assert blocks[3].startswith("Sorry")  # an empty text still gets a short answer
    assert blocks[4].startswith("No logs backend is configured")


def test_chat_as_a_number_not_on_the_allowlist(tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text('users: {"+15551230001": {name: alice, role: operator}}\n', "utf-8")
    result = operator("chat", "--config", str(config), "--user", "+15559999999", stdin="status\n")
    assert "not on the allowlist" in result.stdout


def test_a_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text("twilio_auth_token: s3cret\n", "utf-8")
    result = operator("chat", "--config", str(config), stdin="status\n", as_user=True)
    assert result.returncode != 0
    assert "set them in the environment" in result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr


def test_intent_tools_still_read_the_catalog_of_a_config_the_service_refuses(tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text("services: [billing]\ntwilio_auth_token: s3cret\nusers: {'+1': {role: admin}}\n", "utf-8")
    stdin = json.dumps({"user": "+1", "text": "billing errors"}) + "\n"
    result = operator("intents", "parse", "--config", str(config), "--jsonl", stdin=stdin)
    assert result.returncode == 0
    assert json.loads(result.stdout)["slots"]["service"] == "billing"
    assert "warning:" in result.stderr and "s3cret" not in result.stderr
    unreadable = tmp_path / "broken.yaml"
    unreadable.write_text("services: [a\n", "utf-8")
    assert operator("intents", "parse", "--config", str(unreadable), "--jsonl", stdin=stdin).returncode != 0

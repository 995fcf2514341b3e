"""The Dockerfile and compose.yaml, with no container engine: what they say is checked against the
repository and the settings, and what they run is run here (tests/deploy/image.py): the build stage's
script into a temporary root, then the image's entry point as its unprivileged user with the compose
file's environment, against Redis started with the compose file's own command and a real PostgreSQL set
up as its postgres service says, checked through /readyz, a signed text, and the image's health check."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import psycopg
import pytest
import yaml
from psycopg import sql

from bot.settings import Settings
from tests.bot.appserver import ALICE, TOKEN, sign
from tests.bot.servers_history import postgres
from tests.deploy.conftest import IMAGE_UID, REPO
from tests.deploy.image import Image, compose_environment, compose_words, parse_dockerfile, read_env_file
from tests.servers import LOOPBACK, Process, binary, free_port, http_status, wait_until

TESTED_SCRIPTS = {
    "deploy/install.sh": "the `image` fixture (tests/deploy/conftest.py) builds the image with it",
    "deploy/entrypoint.sh": "test_the_image_serves_with_the_compose_environment",
    "deploy/healthcheck.sh": "test_the_image_serves_with_the_compose_environment",
}
"""Every script the Dockerfile or compose.yaml runs, and the test that runs it here."""
COMPOSE_ONLY = {"REDIS_PASSWORD", "POSTGRES_PASSWORD"}
"""Variables of .env.example that only compose.yaml reads (to build REDIS_URL and DATABASE_URL)."""


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text("utf-8"))
    return data


def setting_variables() -> set[str]:
    """Every environment variable a setting is read from: OPERATOR_<NAME>, or its own name (TWILIO_… )."""
    names = {"OPERATOR_CONFIG"}
    for name, field in Settings.model_fields.items():
        choices = getattr(field.validation_alias, "choices", None)
        names |= {str(c) for c in choices if str(c).isupper()} if choices else {f"OPERATOR_{name.upper()}"}
    return names


def entrypoint_variables() -> set[str]:
    import re

    text = (REPO / "deploy" / "entrypoint.sh").read_text("utf-8")
    return set(re.findall(r"\$\{(\w+)", text))


def image_script(path: str, dockerfile_copies: dict[str, str]) -> str:
    """The repository file an image path is: copied by a COPY of the build stage, or installed into
    /opt/operator/libexec by deploy/install.sh."""
    if path.startswith("/opt/operator/libexec/"):
        name = path.rsplit("/", 1)[1]
        assert name in (REPO / "deploy" / "install.sh").read_text("utf-8"), f"install.sh does not install {name}"
        return f"deploy/{name}"
    for destination, source in dockerfile_copies.items():
        if path.startswith(destination.rstrip("/") + "/"):
            return source.rstrip("/") + path[len(destination.rstrip("/")) :]
    raise AssertionError(f"{path} is not a file of the repository")


def test_every_step_of_the_dockerfile_is_a_tested_script_and_the_user_is_not_root() -> None:
    stages = parse_dockerfile((REPO / "Dockerfile").read_text("utf-8"))
    assert all(stage.base.startswith("python:3.11-slim") for stage in stages)
    copies = {step.args[-1]: step.args[0] for step in stages[0].all("COPY") if len(step.args) == 2}
    run = [step for stage in stages for step in stage.all("RUN")]
    final = stages[-1]
    commands = [step.args for step in run] + [final.last("ENTRYPOINT").args, final.last("HEALTHCHECK").args]  # type: ignore[union-attr]
    for command in commands:
        script = image_script(command[0], copies)
        assert (REPO / script).is_file() and os.access(REPO / script, os.X_OK), script
        assert script in TESTED_SCRIPTS, f"{script} runs in the image but no test runs it"
    assert all(step.exec_form for step in run + final.all("ENTRYPOINT") + final.all("HEALTHCHECK"))
    assert not final.all("RUN"), "the final stage runs nothing: it copies what the build stage made"
    user = final.last("USER")
    assert user is not None and user.args[0].split(":")[0] not in ("root", "0")
    assert int(user.args[0].split(":")[0]) == IMAGE_UID
    env = {k: v for step in final.all("ENV") for k, v in (a.split("=", 1) for a in step.args)}
    assert [step.args for step in final.all("EXPOSE")] == [[env["PORT"]]]
    assert set(env) - {"HOME", "MPLCONFIGDIR", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"} <= (
        setting_variables() | entrypoint_variables()
    )
    ignored = (REPO / ".dockerignore").read_text("utf-8")
    for source in copies.values():
        assert f"!{source.split('/')[0]}" in ignored, f".dockerignore leaves out {source}, which the Dockerfile copies"


def test_the_compose_file_wires_the_settings_the_image_and_its_databases(tmp_path: Path) -> None:
    services = compose()["services"]
    operator, redis, database = services["operator"], services["redis"], services["postgres"]
    assert operator["build"] == "." and "command" not in operator and "entrypoint" not in operator
    assert "healthcheck" not in operator and operator.get("user") in (None, str(IMAGE_UID))  # the image's own
    assert not operator.get("privileged") and operator["cap_drop"] == ["ALL"] and operator["read_only"] is True
    example = read_env_file(REPO / ".env.example")
    (tmp_path / ".env").write_text("REDIS_PASSWORD=r3d\nPOSTGRES_PASSWORD=pg5\n", "utf-8")
    env = compose_environment(operator, tmp_path, {**example, "REDIS_PASSWORD": "r3d", "POSTGRES_PASSWORD": "pg5"})
    assert set(env) - COMPOSE_ONLY <= setting_variables() | entrypoint_variables()
    assert set(example) - COMPOSE_ONLY <= setting_variables()
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in operator["volumes"]}
    assert mounted[env["OPERATOR_CONFIG"]] == "./operator.yaml"  # the copy of operator.example.yaml
    assert operator["ports"] == ["127.0.0.1:8000:8000"]  # the image's PORT, for a proxy on this host
    redis_url, database_url = urlsplit(env["REDIS_URL"]), urlsplit(env["DATABASE_URL"])
    assert (redis_url.hostname, redis_url.port, redis_url.password) == ("redis", 6379, "r3d")
    words = compose_words(redis["command"], {"REDIS_PASSWORD": "r3d"})
    assert words[words.index("--requirepass") + 1] == "r3d"
    postgres_env = {name: compose_words([str(value)], {"POSTGRES_PASSWORD": "pg5"})[0]
                    for name, value in database["environment"].items()}  # fmt: skip
    assert (database_url.hostname, database_url.port) == ("postgres", 5432)
    assert (database_url.username, database_url.password, database_url.path) == (
        postgres_env["POSTGRES_USER"], postgres_env["POSTGRES_PASSWORD"], "/" + postgres_env["POSTGRES_DB"])  # fmt: skip
    assert set(operator["depends_on"]) == {"redis", "postgres"}


# --- the image, run ------------------------------------------------------------------------------------------

TEST_SECRETS = {"TWILIO_AUTH_TOKEN": TOKEN, "OPERATOR_WEBHOOK_TOKEN": "w" * 32, "REDIS_PASSWORD": "r3disPassw0rd",
                "POSTGRES_PASSWORD": "p0stgresPassw0rd"}  # fmt: skip
"""What a user puts in .env in place of the example's placeholders."""


def filled_env_file(target: Path) -> dict[str, str]:
    """.env.example with its placeholders filled in, as a user's .env; returns its variables."""
    lines = []
    for line in (REPO / ".env.example").read_text("utf-8").splitlines():
        name = line.partition("=")[0]
        lines.append(f"{name}={TEST_SECRETS[name]}" if name in TEST_SECRETS and not line.startswith("#") else line)
    target.write_text("\n".join(lines) + "\n", "utf-8")
    return read_env_file(target)


def as_image_user(image: Image) -> Callable[[], None] | None:
    """Run as the image's user (`USER`), when the tests run as root and that user can start the image's
    Python. A Python under a private home (pyenv in /root) it cannot: then as this user, and the image's
    user is checked by reading the Dockerfile and the ownership of what it writes."""
    if os.geteuid() != 0:
        return None

    def drop() -> None:
        os.setgroups([])
        os.setgid(IMAGE_UID)
        os.setuid(IMAGE_UID)

    try:
        subprocess.run([str(image.path("/opt/operator/bin/python")), "-c", "pass"], preexec_fn=drop, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return drop


@contextlib.contextmanager
def compose_redis(service: dict[str, Any], dotenv: dict[str, str], folder: Path) -> Iterator[int]:
    """Debian's redis-server with the compose service's own command, on a free loopback port."""
    words = compose_words(service["command"], dotenv)
    assert words[0] == "redis-server"
    port = free_port()
    args = [binary("redis-server", "/usr/bin/redis-server"), *words[1:], "--port", str(port), "--bind", LOOPBACK,
            "--dir", str(folder)]  # fmt: skip
    process = Process(args, folder / "redis.log", cwd=folder)
    try:
        health = compose_words(service["healthcheck"]["test"][1:], dotenv)
        env = {**os.environ, **{k: compose_words([v], dotenv)[0] for k, v in service["environment"].items()}}
        check = [shutil.which(health[0]) or health[0], "-p", str(port), *health[1:]]
        process.wait_ready(lambda: subprocess.run(check, env=env, capture_output=True, check=False).stdout == b"PONG\n",
                           15, "redis (the compose service's health check)")  # fmt: skip
        yield port
    finally:
        process.stop()


@pytest.mark.servers
def test_the_image_serves_with_the_compose_environment(image: Image, tmp_path: Path) -> None:
    services = compose()["services"]
    dotenv = filled_env_file(tmp_path / ".env")
    config = image.path("/etc/operator/operator.yaml")
    config.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "operator.example.yaml", config)  # the user's copy, mounted where compose mounts it
    with postgres() as database, compose_redis(services["redis"], dotenv, tmp_path) as redis_port:
        isready = services["postgres"]["healthcheck"]["test"][1:]  # the service's health check, against it
        tool = binary(isready[0], f"/usr/lib/postgresql/*/bin/{isready[0]}")
        assert (
            subprocess.run([tool, "-h", LOOPBACK, "-p", str(database.port), *isready[1:]], check=False).returncode == 0
        )
        database_env = services["postgres"]["environment"]
        role, name = sql.Identifier(database_env["POSTGRES_USER"]), sql.Identifier(database_env["POSTGRES_DB"])
        with database.connect(superuser=True) as admin:  # what the postgres image makes of its environment
            admin.autocommit = True
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, dotenv["POSTGRES_PASSWORD"]))
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, role))
        env = compose_environment(services["operator"], tmp_path, dotenv)
        hosts = {"redis:6379": f"{LOOPBACK}:{redis_port}", "postgres:5432": f"{LOOPBACK}:{database.port}"}
        for name in env:
            for host, here in hosts.items():
                env[name] = env[name].replace(f"@{host}/", f"@{here}/")
        port = free_port()
        running_env = {"PATH": os.environ["PATH"], **mapped(image.env, image), **mapped(env, image),
                       "LISTEN_HOST": LOOPBACK, "PORT": str(port)}  # fmt: skip
        entrypoint = [str(image.path(image.entrypoint[0])), *image.entrypoint[1:]]
        user = as_image_user(image)
        log = tmp_path / "operator.log"
        with log.open("wb") as output:
            process = subprocess.Popen(entrypoint, env=running_env, cwd=image.path(image.workdir), stdout=output,
                                       stderr=subprocess.STDOUT, preexec_fn=user)  # fmt: skip
        url = f"http://{LOOPBACK}:{port}"
        health = [str(image.path(image.healthcheck[0])), *image.healthcheck[1:]]
        try:
            wait_until(lambda: f"listening on {url} (2 workers)" in log.read_text() or process.poll() is not None,
                       120, "the image's entry point")  # fmt: skip
            assert process.poll() is None, log.read_text()
            ready = httpx.get(f"{url}/readyz", timeout=30)
            assert ready.status_code == 200, ready.text
            assert {"history": "ok", "shared_store": "ok", "host": "ok"}.items() <= ready.json()["checks"].items()
            params = {"MessageSid": "SM" + "7" * 32, "From": ALICE, "Body": "help"}
            text = httpx.post(f"{url}/sms", content=urlencode(params), timeout=30, headers={
                "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(params)})  # fmt: skip
            assert text.status_code == 200 and "<Message>" in text.text, text.text
            healthy = subprocess.run(health, env={**running_env}, preexec_fn=user, check=False)
            assert healthy.returncode == 0
            wait_until(lambda: stored_texts(env["DATABASE_URL"]) > 0, 20, "the text in the history")
        finally:
            process.terminate()
            process.wait(timeout=30)
        assert subprocess.run(health, env=running_env, preexec_fn=user, check=False).returncode == 1
        assert "Traceback" not in log.read_text()
        assert not [p for p in image.path("/var/lib/operator").rglob("*.sqlite3")], "DATABASE_URL was not used"
    assert http_status(f"{url}/healthz") is None


def stored_texts(database_url: str) -> int:
    """Texts in the audit history of the database compose gives the bot."""
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT count(*) FROM message_history").fetchone()
        return int(row[0]) if row else 0


def mapped(env: dict[str, str], image: Image) -> dict[str, str]:
    """Environment values that are paths of the image, as paths here."""
    places = ("/opt/operator", "/var/lib/operator", "/etc/operator")
    return {name: str(image.path(value)) if value.startswith(places) else value for name, value in env.items()}


@pytest.mark.servers
def test_the_installation_holds_the_repositorys_scripts(image: Image) -> None:
    for name in ("entrypoint.sh", "healthcheck.sh"):
        installed = image.path(f"/opt/operator/libexec/{name}")
        assert installed.read_bytes() == (REPO / "deploy" / name).read_bytes() and os.access(installed, os.X_OK)
    version = subprocess.run([str(image.path("/opt/operator/bin/operator")), "--version"], capture_output=True,
                             text=True, check=True, timeout=60)  # fmt: skip
    assert version.stdout.startswith("operator ")
    state = image.path("/var/lib/operator")
    assert state.is_dir() and (os.geteuid() != 0 or state.stat().st_uid == IMAGE_UID)

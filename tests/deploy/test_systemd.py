"""deploy/operator.service: hardened as the deployment notes say, accepted by `systemd-analyze verify`, and
its ExecStart a real command line: run here as written (the installation deploy/install.sh makes, the
unit's Environment= and EnvironmentFile=, its WorkingDirectory), it serves a signed text."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from tests.bot.appserver import ALICE, sign
from tests.deploy.conftest import REPO
from tests.deploy.image import Image, read_env_file
from tests.deploy.test_image import filled_env_file
from tests.servers import LOOPBACK, free_port, http_status, wait_until

UNIT = REPO / "deploy" / "operator.service"
PREFIX = "/opt/operator"
"""Where the unit expects the installation (`deploy/install.sh /opt/operator`, as the README says)."""


def directives(text: str) -> dict[str, list[str]]:
    """The unit's directives, each with every value it is given (several Environment= lines, …)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def environment_of(unit: dict[str, list[str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in unit.get("Environment", []):
        for assignment in shlex.split(line):
            name, _, value = assignment.partition("=")
            env[name] = value
    return env


def test_the_unit_is_hardened() -> None:
    unit = directives(UNIT.read_text("utf-8"))
    assert unit.get("DynamicUser") == ["yes"] or unit.get("User", ["root"])[0] not in ("root", "0")
    for key, value in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": ""}.items():  # fmt: skip
        assert unit.get(key) == [value], key
    env = environment_of(unit)
    history = Path(env["OPERATOR_HISTORY_PATH"])
    assert str(history.parent) in unit["ReadWritePaths"][0].split()
    assert unit["StateDirectory"] == [history.parent.name] and unit["WorkingDirectory"] == [str(history.parent)]
    assert unit["EnvironmentFile"] == ["/etc/operator/operator.env"]
    assert shlex.split(unit["ExecStart"][0])[0] == f"{PREFIX}/bin/operator"
    assert int(unit["LimitNOFILE"][0]) >= 4096 + 256  # max_connections and the files the bot keeps itself


def installed_unit(image: Image, state: Path, env_file: Path, port: int) -> str:
    """The unit as it would be on a host where deploy/install.sh put Operator at /opt/operator: here, the
    image's installation (made by the same script); its own paths and port moved into the test's."""
    text = UNIT.read_text("utf-8").replace(PREFIX, str(image.path(PREFIX)))
    text = text.replace("/etc/operator/operator.env", str(env_file)).replace("/var/lib/operator", str(state))
    return text.replace("/etc/operator/operator.yaml", str(env_file.with_name("operator.yaml"))).replace(
        "--port 8000", f"--port {port}"
    )


@pytest.mark.servers
def test_systemd_accepts_the_unit(image: Image, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is not installed: run `make servers` (scripts/install-servers)"
    copy = tmp_path / "operator.service"
    copy.write_text(installed_unit(image, tmp_path / "state", tmp_path / "operator.env", 8000), "utf-8")
    verified = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, check=False, timeout=60)
    assert verified.returncode == 0, verified.stderr
    missing = subprocess.run([analyze, "verify", str(UNIT)], capture_output=True, text=True, check=False, timeout=60)
    assert f"{PREFIX}/bin/operator is not executable" in missing.stderr  # it does look at ExecStart's command


@pytest.mark.servers
def test_the_units_command_line_serves(image: Image, tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    state.mkdir()
    env_file = tmp_path / "operator.env"
    filled_env_file(env_file)
    shutil.copy(REPO / "operator.example.yaml", tmp_path / "operator.yaml")
    unit = directives(installed_unit(image, state, env_file, port))
    env = {**read_env_file(Path(unit["EnvironmentFile"][0])), **environment_of(unit)}
    env = {name: value for name, value in env.items() if name not in ("REDIS_PASSWORD", "POSTGRES_PASSWORD")}
    log = tmp_path / "operator.log"
    with log.open("wb") as output:
        process = subprocess.Popen(shlex.split(unit["ExecStart"][0]), cwd=unit["WorkingDirectory"][0], env=env,
                                   stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_until(lambda: f"listening on {url}\n" in log.read_text() or process.poll() is not None, 90, "the unit")
        assert process.poll() is None, log.read_text()
        ready = httpx.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 200 and ready.json()["checks"]["history"] == "ok", ready.text
        params = {"MessageSid": "SM" + "5" * 32, "From": ALICE, "Body": "help"}
        text = httpx.post(f"{url}/sms", content=urlencode(params), timeout=30, headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(params)})  # fmt: skip
        assert text.status_code == 200 and "<Message>" in text.text
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert (state / "operator-history.sqlite3").is_file()  # OPERATOR_HISTORY_PATH, in the state directory
    assert "Traceback" not in log.read_text() and http_status(f"{url}/healthz") is None

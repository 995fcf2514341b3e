"""`operator chat` answering from a real Prometheus: texts in, numbers from the exporter out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import PrometheusServer, refused_url

pytestmark = pytest.mark.servers

OPERATOR = str(Path(sys.executable).with_name("operator"))


def chat(config: Path, *texts: str) -> list[str]:
    result = subprocess.run(
        [OPERATOR, "chat", "--config", str(config)],
        input="\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("---\n")[:-1]


def test_chat_answers_from_real_backends(prometheus_server: PrometheusServer, tmp_path: Path) -> None:
    config = tmp_path / "operator.yaml"
    config.write_text(
        f"monitors:\n  prometheus: {{url: '{prometheus_server.url}'}}\n  host: {{}}\n"
        f"  loki: {{url: '{refused_url()}', timeout_s: 1}}\n",
        "utf-8",
    )
    status, memory, follow_up, logs = chat(
        config, "is prod on fire?", "memory on checkout", "and the last hour", "any payment errors?"
    )
    assert status.splitlines() == ["2/3 backends ok: Prometheus, Host", "Loki: unreachable (cannot connect)"]
    assert memory == "checkout memory: 512.0 MiB\n"
    assert follow_up.startswith("[checkout] checkout memory 1h: now 512.0 MiB, min 512.0 MiB")
    assert logs == "[1h] Loki: unreachable (cannot connect)\n"  # the range carried over from the question before
    assert "127.0.0.1" not in "".join((status, memory, follow_up, logs))

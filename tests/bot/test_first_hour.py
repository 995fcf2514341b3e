"""A new user's first hour, as the README tells it: `operator serve --dev` in a checkout, then the
README's own `curl` line, exactly as printed (only the port is this test's), answered, then
`operator chat`; and nothing the bot writes shows up in `git status` of that checkout."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bot.test_serve import environment
from tests.servers import free_port, http_status, wait_until

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = str(Path(sys.executable).with_name("operator"))
README_URL = "http://127.0.0.1:8000"


def readme_curl() -> list[str]:
    """The README's try-it command, as printed."""
    commands = re.findall(r"`(curl [^`]+)`", (ROOT / "README.md").read_text("utf-8"))
    assert len(commands) == 1, commands
    argv = shlex.split(commands[0])
    assert any(arg.startswith(README_URL) for arg in argv), "the README's curl must target the dev server"
    return argv


def checkout(tmp: Path) -> Path:
    """A git checkout with this repository's .gitignore, for `git status` to judge what the bot left."""
    folder = tmp / "checkout"
    folder.mkdir()
    shutil.copy(ROOT / ".gitignore", folder / ".gitignore")
    git(folder, "init", "-q")
    git(folder, "add", ".gitignore")
    git(folder, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "clone")
    return folder


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True, timeout=30).stdout


def test_the_readme_curl_is_answered_and_the_checkout_stays_clean(tmp_path: Path) -> None:
    folder = checkout(tmp_path)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen([OPERATOR, "serve", "--dev", "--port", str(port)], cwd=folder,
                                   env=environment(), stdout=output, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(f"{url}/healthz") == 200 or process.poll() is not None, 30, "operator serve")
        assert process.poll() is None, log.read_text()
        argv = [arg.replace(README_URL, url) for arg in readme_curl()]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        body = re.search(r"<Message>(?:<Body>)?([^<]+)", result.stdout)
        assert body, f"empty reply: {result.stdout!r}"
        assert "backends ok" in body.group(1)  # the README's `Body=status`, answered by the host monitor
        assert git(folder, "status", "--porcelain", "--untracked-files=all") == ""  # while it runs (-wal, -shm)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert git(folder, "status", "--porcelain", "--untracked-files=all") == ""
    chat = subprocess.run([OPERATOR, "chat"], input="status\n", cwd=folder, env=environment(), capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert chat.returncode == 0 and "backends ok" in chat.stdout, chat.stderr
    assert git(folder, "status", "--porcelain", "--untracked-files=all") == ""
    written = {p.name for p in folder.iterdir()} - {".git", ".gitignore"}
    assert "operator-history.sqlite3" in written  # the history is there, and ignored

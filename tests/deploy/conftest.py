"""The image, built once per session the way the Dockerfile builds it (tests/deploy/image.py), offline:
pip installs from wheels of the packages installed here (tests/deploy/wheelhouse.py)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.image import Image, build
from tests.deploy.wheelhouse import build_wheelhouse

REPO = Path(__file__).resolve().parents[2]
IMAGE_UID = 10001
"""The Dockerfile's USER (checked in test_image.py), the user the entry point runs as here when root."""


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    wheels = build_wheelhouse(REPO / "pyproject.toml", tmp_path_factory.mktemp("wheels"))
    # Not under pytest's tmp_path (mode 0700): the image's unprivileged user must reach its files.
    root = Path(tempfile.mkdtemp(prefix="operator-image-"))
    root.chmod(0o755)
    env = {"PYTHON": getattr(sys, "_base_executable", sys.executable), "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(wheels[0].parent), "HOME": str(tmp_path_factory.mktemp("home"))}  # fmt: skip
    try:
        built = build(REPO / "Dockerfile", REPO, root, env)
        if os.geteuid() == 0:  # COPY --chown of the final stage
            for copy in built.stages[-1].all("COPY"):
                if "chown" in copy.flags:
                    uid, _, gid = copy.flags["chown"].partition(":")
                    for path in [built.path(copy.args[1]), *built.path(copy.args[1]).rglob("*")]:
                        os.chown(path, int(uid), int(gid or uid))
        yield built
    finally:
        shutil.rmtree(root, ignore_errors=True)

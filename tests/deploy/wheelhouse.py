"""Wheels of the packages already installed here, so `pip install` can build Operator's image offline.

No test downloads anything, yet the image's install step (deploy/install.sh) is a plain `pip install` of
the source, its dependencies and its build backend. Pointed at this wheelhouse (`PIP_NO_INDEX=1`,
`PIP_FIND_LINKS`), pip resolves and installs exactly what it would from PyPI, from the files this venv
holds: each distribution Operator needs (its dependency closure, markers and extras honoured, and the
build backend `pyproject.toml` names) is zipped back into a wheel from the files its RECORD lists, with
its own metadata and WHEEL tags. Console scripts are left out; pip writes them again from
`entry_points.txt`.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import re
import tomllib
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement

SKIPPED_INFO = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
"""What pip writes at install time into a dist-info directory, and a wheel must not carry."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: Iterable[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions these requirements need, transitively, by canonical name."""
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    todo = [Requirement(text) for text in requirements]
    while todo:
        requirement = todo.pop()
        key = canonical(requirement.name)
        wanted = set(requirement.extras)
        if key in found and wanted <= extras_seen[key]:
            continue
        distribution = found.get(key) or metadata.distribution(requirement.name)
        if not requirement.specifier.contains(distribution.version, prereleases=True):
            raise LookupError(f"{requirement} is needed but {distribution.version} is installed")
        found[key] = distribution
        extras_seen.setdefault(key, set()).update(wanted)
        for text in distribution.requires or []:
            needed = Requirement(text)
            contexts = [{"extra": extra} for extra in sorted(extras_seen[key])] or [{"extra": ""}]
            if needed.marker is None or any(needed.marker.evaluate(context) for context in contexts):
                todo.append(needed)
    return found


def project_requirements(pyproject: Path) -> list[str]:
    """What installing the project needs: its build backend and its runtime dependencies."""
    project = tomllib.loads(pyproject.read_text("utf-8"))
    return [*project["build-system"]["requires"], *project["project"]["dependencies"]]


def rebuild(distribution: metadata.Distribution, target: Path) -> Path:
    """A wheel of an installed distribution, from the files its RECORD lists."""
    files = list(distribution.files or [])
    info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    tags = [line.split(":", 1)[1].strip() for line in (distribution.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]  # fmt: skip
    parts = [sorted({tag.split("-")[i] for tag in tags}) for i in range(3)]
    name = re.sub(r"[-_.]+", "_", distribution.metadata["Name"])
    wheel = target / f"{name}-{distribution.version.replace('-', '_')}-{'-'.join('.'.join(p) for p in parts)}.whl"
    root = Path(str(distribution.locate_file("")))
    record: list[str] = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for file in files:
            if file.parts[0] == ".." or "__pycache__" in file.parts or file.suffix == ".pyc":
                continue
            if file.parts[0] == info and file.name in SKIPPED_INFO:
                continue
            data = (root / file).read_bytes()
            archive.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{file.as_posix()},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


def build_wheelhouse(pyproject: Path, target: Path) -> list[Path]:
    """Wheels of everything installing the project at `pyproject` needs, in `target`."""
    target.mkdir(parents=True, exist_ok=True)
    return [rebuild(distribution, target) for distribution in closure(project_requirements(pyproject)).values()]

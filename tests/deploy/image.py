"""The Dockerfile and compose.yaml, done without a container engine: their steps run here, in a temporary
directory standing for the image's root file system.

`parse_dockerfile` reads the instructions Operator's Dockerfile uses (and refuses others, so a new kind
of step cannot slip in untested); `build` does the build stage's COPY and RUN steps under `root` (a path
`/x` of the image is `root/x`) and returns what the final stage says about running it: environment, user,
working directory, entry point, health check. `compose_environment` is the environment compose gives a
service: its `environment` over its `env_file`, with `${VAR}` interpolated from the project's .env.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KNOWN = {"FROM", "COPY", "RUN", "ENV", "WORKDIR", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"}


@dataclass
class Instruction:
    keyword: str
    flags: dict[str, str]
    args: list[str]
    exec_form: bool
    """Whether the command was written as a JSON array (run as is) rather than a shell line."""


@dataclass
class Stage:
    base: str
    name: str | None
    steps: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [step for step in self.steps if step.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Image:
    root: Path
    stages: list[Stage]
    env: dict[str, str]
    user: str
    workdir: str
    entrypoint: list[str]
    healthcheck: list[str]
    exposed: list[str]

    def path(self, image_path: str) -> Path:
        """Where a path of the image is, here."""
        return self.root / image_path.lstrip("/")


def _lines(text: str) -> list[str]:
    """Instructions one a line: comments dropped, continuation lines joined."""
    joined: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    if current:
        joined.append(current)
    return joined


def _instruction(line: str) -> Instruction:
    keyword, _, rest = line.partition(" ")
    keyword = keyword.upper()
    if keyword not in KNOWN:
        raise ValueError(f"the Dockerfile uses {keyword}, which tests/deploy/image.py does not do yet")
    flags: dict[str, str] = {}
    rest = rest.strip()
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        name, _, value = flag[2:].partition("=")
        flags[name] = value
        rest = rest.strip()
    if keyword == "HEALTHCHECK":
        word, _, rest = rest.partition(" ")
        if word.upper() != "CMD":
            raise ValueError(f"HEALTHCHECK {word} is not handled")
        rest = rest.strip()
    if rest.startswith("["):
        return Instruction(keyword, flags, list(json.loads(rest)), exec_form=True)
    return Instruction(keyword, flags, shlex.split(rest), exec_form=False)


def parse_dockerfile(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for line in _lines(text):
        step = _instruction(line)
        if step.keyword == "FROM":
            name = step.args[2] if len(step.args) == 3 and step.args[1].upper() == "AS" else None
            stages.append(Stage(step.args[0], name))
        elif not stages:
            raise ValueError(f"{step.keyword} before FROM")
        else:
            stages[-1].steps.append(step)
    return stages


def env_of(step: Instruction) -> dict[str, str]:
    if "=" not in step.args[0]:
        return {step.args[0]: " ".join(step.args[1:])}
    return dict(arg.split("=", 1) for arg in step.args)


def build(dockerfile: Path, context: Path, root: Path, env: dict[str, str]) -> Image:
    """Do the Dockerfile's steps with `root` as the image's `/`; RUN steps get `env` (and nothing but
    PATH from here). Returns the final stage's runtime facts."""
    stages = parse_dockerfile(dockerfile.read_text("utf-8"))
    for stage in stages[:-1]:  # build stages: their files land in the same root the final stage copies from
        stage_env: dict[str, str] = {}
        for step in stage.steps:
            if step.keyword == "COPY":
                *sources, destination = step.args
                for source in sources:
                    _copy(context / source, root / destination.lstrip("/"), into=destination.endswith("/"))
            elif step.keyword == "ENV":
                stage_env.update(env_of(step))
            elif step.keyword == "RUN":
                if not step.exec_form:
                    raise ValueError("write RUN steps in exec form (a JSON array): a script and its arguments")
                command = [_mapped(arg, root) for arg in step.args]
                done = subprocess.run(command, env={"PATH": os.environ["PATH"], **stage_env, **env}, check=False,
                                      timeout=900, capture_output=True, text=True)  # fmt: skip
                if done.returncode != 0:
                    raise RuntimeError(f"RUN {step.args} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
            else:
                raise ValueError(f"{step.keyword} in a build stage is not handled")
    final = stages[-1]
    runtime: dict[str, str] = {}
    for step in final.steps:
        if step.keyword == "COPY":
            if "from" not in step.flags:
                raise ValueError("the final stage copies only from the build stage")
            source, destination = step.args
            if source != destination or not (root / source.lstrip("/")).exists():
                raise ValueError(f"COPY --from {source} {destination}: not built")
        elif step.keyword == "ENV":
            runtime.update(env_of(step))
    user, workdir = final.last("USER"), final.last("WORKDIR")
    entrypoint, healthcheck = final.last("ENTRYPOINT"), final.last("HEALTHCHECK")
    return Image(root, stages, runtime, user.args[0] if user else "root", workdir.args[0] if workdir else "/",
                 entrypoint.args if entrypoint else [], healthcheck.args if healthcheck else [],
                 [arg for step in final.all("EXPOSE") for arg in step.args])  # fmt: skip


def _copy(source: Path, destination: Path, into: bool) -> None:
    if source.is_dir():
        shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                        dirs_exist_ok=True)  # fmt: skip
    else:
        target = destination / source.name if into else destination
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def _mapped(arg: str, root: Path) -> str:
    return str(root / arg.lstrip("/")) if arg.startswith("/") else arg


# --- compose ----------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}|\$\$")


def interpolate(value: str, variables: dict[str, str]) -> str:
    """compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` (an unset or empty VAR is an error)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, text = match.groups()
        if variables.get(name):
            return variables[name]
        if kind == "-":
            return text
        raise KeyError(f"{name}: {text or 'not set'}")

    return _VARIABLE.sub(one, value)


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=value lines (what compose, systemd's EnvironmentFile and python-dotenv all read the same way)."""
    values: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def compose_environment(service: dict[str, Any], project: Path, dotenv: dict[str, str]) -> dict[str, str]:
    """The environment compose gives `service`: env_file (relative to the project), then `environment`."""
    env: dict[str, str] = {}
    files = service.get("env_file", [])
    for name in [files] if isinstance(files, str) else files:
        env.update(read_env_file(project / name))
    given = service.get("environment", {})
    if isinstance(given, list):
        given = dict(item.split("=", 1) for item in given)
    env.update({name: interpolate(str(value), dotenv) for name, value in given.items()})
    return env


def compose_words(command: list[str] | str, dotenv: dict[str, str]) -> list[str]:
    return [interpolate(word, dotenv) for word in (command if isinstance(command, list) else shlex.split(command))]

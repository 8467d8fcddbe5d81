"""Loaders that read GitHub Actions and GitLab CI files into ``tests.ci.parity`` records.

Each loader returns a ``Platform``: its jobs (one command each, matrix variants,
the Pythons each variant sets up, ``needs``) and the problems that are specific to
the platform: unpinned actions, write permissions where none are needed, uv not
cached, coverage data not handed from the tests jobs to the coverage job, a
release without its manual trigger, protected environment or concurrency guard.
Every problem starts with the file and names the job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from tests.ci.parity import RELEASE_PARTS, SETUP_LINES, Job, Platform, matrix_variants

PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\b")
GITLAB_RESERVED = frozenset(
    {
        "default",
        "include",
        "stages",
        "variables",
        "workflow",
        "image",
        "services",
        "cache",
        "before_script",
        "after_script",
    }
)
TWINE_SECRETS = ("TWINE_REPOSITORY_URL", "TWINE_USERNAME", "TWINE_PASSWORD")


def _lines(script: object) -> list[str]:
    """Split a ``run``/``script`` value (string or list of strings) into non-empty lines."""
    items = script if isinstance(script, list) else [] if script is None else [script]
    return [line.strip() for item in items for line in str(item).splitlines() if line.strip()]


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_release(commands: Sequence[str]) -> bool:
    return any(command.startswith("invoke release") for command in commands)


# ---------------------------------------------------------------- GitHub Actions


def _uses_lines(text: str) -> dict[str, list[str]]:
    """Map each job to the source lines of its ``uses:`` steps, in order (for # comments)."""
    lines = text.splitlines()
    found: dict[str, list[str]] = {}
    root = yaml.compose(text)
    jobs = next((v for k, v in getattr(root, "value", []) if k.value == "jobs"), None)
    for key, job in getattr(jobs, "value", []):
        steps = next((v for k, v in getattr(job, "value", []) if k.value == "steps"), None)
        for step in getattr(steps, "value", []):
            for field_key, field_value in getattr(step, "value", []):
                if field_key.value == "uses":
                    found.setdefault(key.value, []).append(lines[field_value.start_mark.line])
    return found


def _github_steps(
    where: str, spec: Mapping[str, Any], uses_lines: list[str], problems: list[str]
) -> dict[str, Any]:
    """Read a job's steps: commands, python-version, cache, artifacts; record problems."""
    found: dict[str, Any] = {"commands": [], "python": None, "uses": []}
    for step in _as_list(spec.get("steps")):
        step = _mapping(step)
        if "run" in step:
            found["commands"] += [line for line in _lines(step["run"]) if line not in SETUP_LINES]
            continue
        ref = str(step.get("uses", ""))
        found["uses"].append(ref)
        action, _, _ = ref.partition("@")
        settings = _mapping(step.get("with"))
        if not ref.startswith("./") and not PINNED.match(ref):
            problems.append(f"{where} uses {ref!r}: pin actions to a full 40-hex commit SHA")
        elif not ref.startswith("./") and not VERSION_COMMENT.search(
            uses_lines[len(found["uses"]) - 1]
        ):
            problems.append(f"{where} uses {ref!r} without a `# vX.Y.Z` comment naming it")
        if action == "actions/setup-python":
            found["python"] = str(settings.get("python-version", ""))
        elif action == "astral-sh/setup-uv" and settings.get("enable-cache") is not True:
            problems.append(f"{where}: astral-sh/setup-uv needs `enable-cache: true` (cache uv)")
        elif action == "actions/upload-artifact":
            found.setdefault("uploads", []).append(settings)
        elif action == "actions/download-artifact":
            found.setdefault("downloads", []).append(settings)
    if found["commands"] and not any(u.startswith("astral-sh/setup-uv@") for u in found["uses"]):
        problems.append(f"{where} does not use astral-sh/setup-uv with caching (cache uv)")
    return found


def _github_release(
    file: str, data: Mapping[Any, Any], name: str, spec: Mapping[str, Any], problems: list[str]
) -> None:
    """A release job: manual dispatch with a part choice, protected env, guard, secrets."""
    where = f"{file}: job {name!r}"
    triggers = _mapping(data.get("on", data.get(True)))  # YAML 1.1 reads `on:` as True
    part = _mapping(_mapping(_mapping(triggers.get("workflow_dispatch")).get("inputs")).get("part"))
    if part.get("type") != "choice" or sorted(_as_list(part.get("options"))) != sorted(
        RELEASE_PARTS
    ):
        problems.append(
            f"{where}: needs `on: workflow_dispatch` with a `part` choice input "
            f"offering {', '.join(RELEASE_PARTS)}"
        )
    environment = spec.get("environment")
    if _mapping(environment).get("name", environment) != "release":
        problems.append(f"{where} must run in the protected `release` environment")
    if "concurrency" not in data and "concurrency" not in spec:
        problems.append(f"{where} has no `concurrency` guard: two releases could overlap")
    env = _mapping(spec.get("env"))
    for variable in TWINE_SECRETS:
        if not str(env.get(variable, "")).startswith("${{ secrets."):
            problems.append(f"{where}: {variable} must come from `${{{{ secrets.{variable} }}}}`")


def _github_coverage(
    file: str, jobs: list[tuple[Job, dict[str, Any]]], problems: list[str]
) -> None:
    """Tests jobs upload their .coverage.py* data; the coverage job needs and downloads it."""
    tests = [job for job, _ in jobs if any("nox -s tests-" in c for c in job.commands)]
    for job, found in jobs:
        if job in tests and not any(
            ".coverage.py" in str(u.get("path", "")) and u.get("include-hidden-files") is True
            for u in found.get("uploads", [])
        ):
            problems.append(
                f"{job.where} does not upload its .coverage.py* data "
                "(actions/upload-artifact with include-hidden-files: true)"
            )
        if job.commands == ("nox -s coverage",):
            if not found.get("downloads"):
                problems.append(f"{job.where} does not download the tests' coverage data")
            missing = [t.name for t in tests if t.name not in job.needs]
            if missing:
                problems.append(f"{job.where} does not need the tests job(s) {', '.join(missing)}")


def load_github(paths: Sequence[Path], root: Path) -> Platform:
    """Read the workflows at ``paths`` (named relative to ``root``) as one platform."""
    platform = Platform(name="GitHub Actions")
    for path in paths:
        file = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        data = _mapping(yaml.safe_load(text))
        uses = _uses_lines(text)
        top = data.get("permissions")
        if top is None or (
            top != {} and any(v not in ("read", "none") for v in _mapping(top).values())
        ):
            platform.problems.append(
                f"{file}: set top-level `permissions` read-only (least privilege); "
                "grant writes per job"
            )
        jobs: list[tuple[Job, dict[str, Any]]] = []
        for name, raw in _mapping(data.get("jobs")).items():
            spec = _mapping(raw)
            where = f"{file}: job {name!r}"
            found = _github_steps(where, spec, uses.get(str(name), []), platform.problems)
            matrix = _mapping(_mapping(spec.get("strategy")).get("matrix"))
            if {"include", "exclude"} & set(matrix):
                platform.problems.append(
                    f"{where}: keep the matrix a plain list (no include/exclude)"
                )
            job = Job(
                file=file,
                name=str(name),
                commands=tuple(found["commands"]),
                variants=matrix_variants(matrix),
                needs=tuple(_as_list(spec.get("needs"))),
            )
            python = found["python"] or ""
            pythons = tuple(tuple(job.expand(python, v).split()) for v in job.variants)
            job = replace(job, pythons=pythons)
            jobs.append((job, found))
            platform.jobs.append(job)
            writes = [k for k, v in _mapping(spec.get("permissions")).items() if v == "write"]
            if writes and not _is_release(job.commands):
                platform.problems.append(f"{where} asks for write permissions it does not need")
            if _is_release(job.commands):
                _github_release(file, data, str(name), spec, platform.problems)
        _github_coverage(file, jobs, platform.problems)
    return platform


# ---------------------------------------------------------------- GitLab CI


def _gitlab_python(image: object) -> str:
    name = str(_mapping(image).get("name", image) or "")
    return name.split(":", 1)[1].split("-")[0] if name.startswith("python:") else ""


def load_gitlab(path: Path, file: str) -> Platform:
    """Read ``.gitlab-ci.yml`` at ``path`` (called ``file`` in problems)."""
    platform = Platform(name=file)
    data = _mapping(yaml.safe_load(path.read_text(encoding="utf-8")))
    default = _mapping(data.get("default"))
    variables = _mapping(data.get("variables"))
    if "UV_CACHE_DIR" not in variables or not default.get("cache"):
        platform.problems.append(f"{file}: cache uv (UV_CACHE_DIR under `default: cache: paths`)")
    for name, raw in data.items():
        if name in GITLAB_RESERVED or str(name).startswith("."):
            continue
        spec = _mapping(raw)
        where = f"{file}: job {name!r}"
        setup = _lines(spec.get("before_script", default.get("before_script")))
        setup += _lines(spec.get("after_script", default.get("after_script")))
        for line in setup:
            if line not in SETUP_LINES:
                platform.problems.append(
                    f"{where}: {line!r} in before_script/after_script is not a setup line; "
                    "a job's work is its one `script` line"
                )
        parallel = spec.get("parallel")
        if parallel is not None and not isinstance(parallel, dict):
            platform.problems.append(f"{where}: use `parallel: matrix`, not a job count")
        variants = tuple(
            variant
            for group in _as_list(_mapping(parallel).get("matrix"))
            for variant in matrix_variants(_mapping(group))
        ) or ({},)
        job = Job(
            file=file,
            name=str(name),
            commands=tuple(_lines(spec.get("script"))),
            variants=variants,
            needs=tuple(_mapping(n).get("job", n) for n in _as_list(spec.get("needs"))),
            pattern=r"\$\{(\w+)\}|\$(\w+)",
        )
        image = str(
            _mapping(spec.get("image")).get("name", spec.get("image", default.get("image")))
        )
        job = replace(job, pythons=tuple((_gitlab_python(job.expand(image, v)),) for v in variants))
        platform.jobs.append(job)
        if any("nox -s tests-" in c for c in job.commands) and not any(
            str(p).startswith(".coverage.py")
            for p in _as_list(_mapping(spec.get("artifacts")).get("paths"))
        ):
            platform.problems.append(f"{where} does not keep its .coverage.py* data as artifacts")
        if job.commands == ("nox -s coverage",) and "tests" not in job.needs:
            platform.problems.append(f"{where} does not need the tests job (its coverage data)")
        if _is_release(job.commands):
            manual = spec.get("when") == "manual" or any(
                _mapping(rule).get("when") == "manual" for rule in _as_list(spec.get("rules"))
            )
            environment = spec.get("environment")
            if not manual:
                platform.problems.append(f"{where}: a release job must be `when: manual`")
            if _mapping(environment).get("name", environment) != "release":
                platform.problems.append(f"{where} must run in the `release` environment")
            if not spec.get("resource_group"):
                platform.problems.append(f"{where} has no resource_group: releases could overlap")
    return platform

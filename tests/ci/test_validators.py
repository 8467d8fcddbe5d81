"""The offline validators the ci session runs catch broken files, naming file and job."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import noxfile
from tests.ci.conftest import ROOT, Mutate

SCHEMA_OF = {
    ".github/workflows/ci.yml": noxfile.CI_SCHEMAS[".github/workflows/*.yml"],
    ".github/workflows/release.yml": noxfile.CI_SCHEMAS[".github/workflows/*.yml"],
    ".gitlab-ci.yml": noxfile.CI_SCHEMAS[".gitlab-ci.yml"],
}


def check_jsonschema(root: Path, file: str) -> subprocess.CompletedProcess[str]:
    """Run check-jsonschema on ``file`` (relative to ``root``) with its vendored schema."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", SCHEMA_OF[file], file]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)


def yamllint(root: Path, file: str) -> subprocess.CompletedProcess[str]:
    """Run yamllint --strict on ``file`` with this repository's configuration."""
    command = [sys.executable, "-m", "yamllint", "--strict", "-c", ".yamllint.yaml", file]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)


def ruff_rev_problem(precommit: str, lock: str) -> str | None:
    """Return why the pre-commit ruff hook and uv.lock's ruff disagree (None: they agree)."""
    rev = re.search(r"ruff-pre-commit\n\s+rev:\s*v?(\S+)", precommit)
    locked = re.search(r'^name = "ruff"\nversion = "([^"]+)"', lock, re.MULTILINE)
    if rev is None or locked is None:
        return ".pre-commit-config.yaml: no astral-sh/ruff-pre-commit rev, or no ruff in uv.lock"
    if rev.group(1) != locked.group(1):
        return (
            f".pre-commit-config.yaml: ruff-pre-commit rev v{rev.group(1)} differs from ruff "
            f"{locked.group(1)} in uv.lock; set rev: v{locked.group(1)}"
        )
    return None


@pytest.mark.parametrize("file", sorted(SCHEMA_OF))
def test_ci_files_match_their_schema(file: str) -> None:
    result = check_jsonschema(ROOT, file)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("file", "old", "new", "location"),
    [
        pytest.param(
            ".github/workflows/ci.yml",
            "    timeout-minutes: 15\n",
            "    timeout-minutez: 15\n",
            "$.jobs.lint",
            id="github-typo-key",
        ),
        pytest.param(
            ".github/workflows/release.yml",
            "    environment: release\n",
            "    enviroment: release\n",
            "$.jobs.release",
            id="github-release-typo-key",
        ),
        pytest.param(
            ".gitlab-ci.yml",
            "  stage: check\n  script:\n    - nox -s lint\n",
            "  stage: check\n  scrip:\n    - nox -s lint\n",
            "$.lint",
            id="gitlab-typo-key",
        ),
    ],
)
def test_schema_catches_a_typo_naming_file_and_job(
    mutate: Mutate, file: str, old: str, new: str, location: str
) -> None:
    result = check_jsonschema(mutate(file, old, new), file)
    assert result.returncode == 1
    assert f"{file}::{location}" in result.stdout


def test_yamllint_passes_and_catches_a_duplicate_key(mutate: Mutate) -> None:
    for pattern in noxfile.CI_YAML:
        for path in noxfile.ci_files(pattern, ROOT):
            result = yamllint(ROOT, path.relative_to(ROOT).as_posix())
            assert result.returncode == 0, result.stdout
    file = ".gitlab-ci.yml"
    root = mutate(file, "  stage: check\n", "  stage: check\n  stage: test\n")
    result = yamllint(root, file)
    assert result.returncode == 1
    assert file in result.stdout
    assert "duplication of key" in result.stdout


def test_ci_files_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"No CI file matches '\.gitlab-ci\.yml'"):
        noxfile.ci_files(".gitlab-ci.yml", tmp_path)


def test_precommit_ruff_matches_the_lock() -> None:
    precommit = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    lock = (ROOT / "uv.lock").read_text(encoding="utf-8")
    assert ruff_rev_problem(precommit, lock) is None


def test_precommit_ruff_drift_is_reported(mutate: Mutate) -> None:
    root = mutate(
        ".pre-commit-config.yaml", "ruff-pre-commit\n    rev: v", "ruff-pre-commit\n    rev: v9"
    )
    precommit = (root / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    problem = ruff_rev_problem(precommit, (root / "uv.lock").read_text(encoding="utf-8"))
    assert problem is not None
    assert "differs from ruff" in problem
    assert ruff_rev_problem("repos: []", "") is not None

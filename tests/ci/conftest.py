"""Fixtures for the CI-file checks: the noxfile's ci sessions and mutable copies of the files.

``nox -s ci`` runs this package with ``--confcutdir=tests/ci`` (the ci group only), so
nothing here depends on the suite-wide conftest.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import noxfile
from tests.ci.jenkinsfile import load_jenkinsfile
from tests.ci.parity import NoxSession, Platform, ci_sessions
from tests.ci.platforms import load_github, load_gitlab

ROOT = Path(noxfile.__file__).resolve().parent
CI_FILES = (
    ".github/workflows/ci.yml",
    ".github/workflows/release.yml",
    ".gitlab-ci.yml",
    "Jenkinsfile",
    ".pre-commit-config.yaml",
    ".yamllint.yaml",
    "noxfile.py",
    "uv.lock",
)
PLATFORMS = ("github", "gitlab", "jenkins")


def load_platform(kind: str, root: Path) -> Platform:
    """Read one platform's CI files under ``root`` (the repository or a mutated copy)."""
    if kind == "github":
        return load_github(noxfile.ci_files(".github/workflows/*.yml", root), root)
    if kind == "gitlab":
        return load_gitlab(root / ".gitlab-ci.yml", ".gitlab-ci.yml")
    return load_jenkinsfile(root / "Jenkinsfile", "Jenkinsfile")


@pytest.fixture(scope="session")
def expected() -> dict[str, NoxSession]:
    """The sessions this repository's noxfile tags ``ci`` (asked of nox itself)."""
    return ci_sessions(ROOT / "noxfile.py")


Mutate = Callable[[str, str, str], Path]


@pytest.fixture
def mutate(tmp_path: Path) -> Mutate:
    """Copy the CI files into tmp_path; ``mutate(file, old, new)`` edits one, returns the root.

    ``old`` must occur in the file (the first occurrence is replaced), so a test whose
    mutation no longer applies fails instead of passing vacuously.
    """
    for name in CI_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)

    def apply(file: str, old: str, new: str) -> Path:
        path = tmp_path / file
        text = path.read_text(encoding="utf-8")
        assert old in text, f"mutation target {old!r} is not in {file}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        return tmp_path

    return apply

# /// script
# dependencies = ["nox>=2025.5.1"]
# ///
"""The quality pipeline of workspace-toolkit: every gate, locally and in every CI.

Plain ``nox`` runs the full pipeline (lint, typecheck, security, tests on every
Python, coverage, build). Every session installs exactly what ``uv.lock`` pins.

Interpreters come from pyenv when it is present (``$PYENV_ROOT/versions/*/bin`` is
put on this process's PATH, nothing global changes); a missing interpreter is an
error, never a silent skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import nox

nox.needs_version = ">=2025.5.1"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = True
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).resolve().parent
PYTHON_VERSIONS = ["3.10", "3.11", "3.12", "3.13"]
PACKAGES = ("external_api", "browser")
LOCK = ROOT / "uv.lock"
# A fixed timestamp for reproducible builds: 2025-01-01T00:00:00Z.
SOURCE_DATE_EPOCH = "1735689600"


def _pyenv_bin_dirs(versions: Iterable[str]) -> list[str]:
    """Return the ``bin`` folders of pyenv's installs of ``versions`` (newest patch first)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found: list[str] = []
    if not root.is_dir():
        return found
    for version in versions:
        candidates = sorted(
            (path for path in root.glob(f"{version}.*") if (path / "bin").is_dir()),
            key=lambda path: [int(part) for part in path.name.split(".") if part.isdigit()],
            reverse=True,
        )
        found.extend(str(path / "bin") for path in candidates[:1])
    return found


def _expose_interpreters() -> None:
    """Put pyenv's interpreters on this process's PATH so nox can find ``pythonX.Y``."""
    extra = [d for d in _pyenv_bin_dirs(PYTHON_VERSIONS) if d not in os.environ["PATH"]]
    if extra:
        os.environ["PATH"] = os.pathsep.join([*extra, os.environ["PATH"]])


_expose_interpreters()


def install_locked(
    session: nox.Session,
    *groups: str,
    extras: Sequence[str] = (),
    project: bool = True,
) -> None:
    """Install ``groups`` (and the project with ``extras``) at the versions pinned in uv.lock.

    With the uv backend this is ``uv sync --locked`` into the session's venv; with the
    virtualenv backend the lock is exported to a requirements file and pip installs it.
    Either way the versions are those of ``uv.lock``; a stale lock is an error.
    """
    if not LOCK.is_file():
        session.error("uv.lock is missing: run `uv lock` and commit it.")
    selection = ["--no-default-groups"]
    selection += [f"--group={group}" for group in groups]
    selection += [f"--extra={extra}" for extra in extras]
    venv = session.virtualenv
    if getattr(venv, "venv_backend", None) == "uv":
        session.run_install(
            "uv",
            "sync",
            "--locked",
            *selection,
            *([] if project else ["--no-install-project"]),
            env={"UV_PROJECT_ENVIRONMENT": venv.location, "UV_PYTHON_DOWNLOADS": "never"},
            silent=True,
        )
        return
    uv = shutil.which("uv")
    if uv is None:
        session.error("uv is needed to read uv.lock: `python3 -m pip install 'nox[uv]'`.")
    requirements = Path(session.create_tmp()) / "requirements.txt"
    session.run_install(
        uv,
        "export",
        "--locked",
        "--no-hashes",
        "--no-emit-project",
        "--format=requirements-txt",
        f"--output-file={requirements}",
        *selection,
        silent=True,
        external=True,
    )
    session.install("-r", str(requirements))
    if project:
        session.install("--no-deps", "-e", ".")


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """Run ``ruff check`` and ``ruff format --check`` over everything; args go to ruff check."""
    install_locked(session, "lint", project=False)
    session.run("ruff", "check", *(session.posargs or ["."]))
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["ci"])
def typecheck(session: nox.Session) -> None:
    """Run ``mypy --strict`` over both packages, noxfile.py, tasks.py, tests and benchmarks."""
    install_locked(session, "typecheck", extras=["browser", "data", "otel"])
    session.run("mypy", "--strict", *session.posargs)


@nox.session(tags=["ci"])
def security(session: nox.Session) -> None:
    """Run bandit over the packages with the configuration in pyproject.toml."""
    install_locked(session, "security", project=False)
    session.run("bandit", "-c", "pyproject.toml", "-r", *PACKAGES, *session.posargs)


@nox.session(python=PYTHON_VERSIONS, tags=["ci"])
def tests(session: nox.Session) -> None:
    """Run the test suite under coverage (one data file per Python); args go to pytest."""
    install_locked(session, "test", extras=["browser", "data", "otel"])
    env = {"COVERAGE_FILE": str(ROOT / f".coverage.py{session.python}")}
    session.run("coverage", "erase", env=env)
    # tests/ci checks the CI files, not the product: `nox -s ci` runs it (with the ci group).
    session.run("coverage", "run", "-m", "pytest", "--ignore=tests/ci", *session.posargs, env=env)


@nox.session(tags=["ci"])
def coverage(session: nox.Session) -> None:
    """Combine the coverage data of every tests session, report, and fail under 90 %."""
    install_locked(session, "coverage", project=False)
    data = sorted(ROOT.glob(".coverage.*"))
    if not data:
        session.error("No coverage data: run `nox -s tests` first.")
    env = {"COVERAGE_FILE": str(ROOT / ".coverage")}
    session.run("coverage", "combine", "--keep", *map(str, data), env=env)
    session.run("coverage", "xml", env=env)
    session.run("coverage", "html", env=env)
    session.run("coverage", "report", *session.posargs, env=env)


def _build_into(session: nox.Session, outdir: Path) -> tuple[Path, Path]:
    """Build sdist and wheel into the fresh folder ``outdir``; return (sdist, wheel)."""
    shutil.rmtree(outdir, ignore_errors=True)
    # --no-isolation: the build backend (hatchling) comes from uv.lock, not a fresh download.
    session.run(
        "python",
        "-m",
        "build",
        "--no-isolation",
        f"--outdir={outdir}",
        env={"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH},
        silent=True,
    )
    sdists = sorted(outdir.glob("*.tar.gz"))
    wheels = sorted(outdir.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        session.error(f"Expected one sdist and one wheel in {outdir}, found {sdists + wheels}.")
    return sdists[0], wheels[0]


def expected_wheel_files(root: Path = ROOT) -> set[str]:
    """Return every file of both packages in the source tree, as wheel paths."""
    files: set[str] = set()
    for package in PACKAGES:
        for path in (root / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(path.relative_to(root).as_posix())
    return files


def wheel_problems(wheel: Path, expected: set[str]) -> list[str]:
    """Return what is wrong with the wheel's file list (empty when it is right).

    The wheel must hold exactly the package files of the source tree (both packages,
    their ``py.typed`` markers and the browser extension), plus its ``.dist-info``,
    and nothing else: no tests, no stray top-level modules.
    """
    with zipfile.ZipFile(wheel) as archive:
        names = {name for name in archive.namelist() if not name.endswith("/")}
    packaged = {name for name in names if ".dist-info/" not in name}
    problems = [f"missing from the wheel: {name}" for name in sorted(expected - packaged)]
    problems += [f"unexpected in the wheel: {name}" for name in sorted(packaged - expected)]
    for package in PACKAGES:
        if f"{package}/py.typed" not in names:
            problems.append(f"{package}/py.typed is not in the wheel")
        if f"{package}/__init__.py" not in names:
            problems.append(f"package {package} is not in the wheel")
    if not any(name.endswith(".dist-info/entry_points.txt") for name in names):
        problems.append("the wheel declares no entry points (console script `workspace`)")
    return problems


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@nox.session(tags=["ci"])
def build(session: nox.Session) -> None:
    """Build sdist + wheel into a fresh dist/, check them, and prove the build reproducible."""
    install_locked(session, "build", project=False)
    dist = ROOT / "dist"
    sdist, wheel = _build_into(session, dist)
    session.run("twine", "check", "--strict", str(sdist), str(wheel))
    problems = wheel_problems(wheel, expected_wheel_files())
    if problems:
        session.error("The wheel's file list is wrong:\n  " + "\n  ".join(problems))
    rebuild_dir = Path(session.create_tmp()) / "rebuild"
    sdist2, wheel2 = _build_into(session, rebuild_dir)
    for first, second in ((wheel, wheel2), (sdist, sdist2)):
        if _sha256(first) != _sha256(second):
            session.error(f"{first.name} is not reproducible: two builds differ.")
    shutil.rmtree(rebuild_dir)
    session.log(f"Reproducible: {wheel.name} sha256={_sha256(wheel)}")
    session.log(f"Reproducible: {sdist.name} sha256={_sha256(sdist)}")


@nox.session(default=False)
def changelog(session: nox.Session) -> None:
    """Preview the next CHANGELOG section from newsfragments/ (``towncrier build --draft``)."""
    install_locked(session, "release", project=False)
    version = session.posargs[0] if session.posargs else "UNRELEASED"
    session.run("towncrier", "build", "--draft", f"--version={version}")


#: Each CI file (glob) and the schema check-jsonschema validates it against, offline.
CI_SCHEMAS = {
    ".github/workflows/*.yml": "vendor.github-workflows",
    ".gitlab-ci.yml": "vendor.gitlab-ci",
}
#: Every YAML file of the CI setup, for yamllint (configured by .yamllint.yaml).
CI_YAML = (*CI_SCHEMAS, ".pre-commit-config.yaml", ".yamllint.yaml")


def ci_files(pattern: str, root: Path = ROOT) -> list[Path]:
    """Return the files matching ``pattern`` under ``root``, sorted; none is an error."""
    files = sorted(root.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No CI file matches {pattern!r} in {root}.")
    return files


@nox.session(tags=["ci"], default=False)
def ci(session: nox.Session) -> None:
    """Validate the CI files offline: schemas, yamllint, parity with this noxfile (tests/ci)."""
    install_locked(session, "ci", project=False)
    for pattern, schema in CI_SCHEMAS.items():
        files = [str(path.relative_to(ROOT)) for path in ci_files(pattern)]
        session.run("check-jsonschema", "--builtin-schema", schema, *files)
    yaml_files = [str(path.relative_to(ROOT)) for p in CI_YAML for path in ci_files(p)]
    session.run("yamllint", "--strict", *yaml_files)
    # --confcutdir: tests/ci stands alone (the ci group only, no project installed).
    session.run("pytest", "--confcutdir=tests/ci", "tests/ci", *session.posargs)


if __name__ == "__main__":  # pragma: no cover - `python noxfile.py` / `uv run noxfile.py`
    nox.main()

"""The noxfile's own logic: interpreter discovery and the wheel file-list check."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import noxfile


def _make_wheel(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "")
    return path


@pytest.fixture
def source_tree(tmp_path: Path) -> Path:
    for name in (
        "external_api/__init__.py",
        "external_api/py.typed",
        "browser/__init__.py",
        "browser/py.typed",
        "browser/browser_extension/error_capture/manifest.json",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "external_api/__pycache__").mkdir()
    (tmp_path / "external_api/__pycache__/x.cpython-312.pyc").write_text("")
    return tmp_path


DIST_INFO = ["workspace_toolkit-0.1.0.dist-info/entry_points.txt"]


def test_expected_files_cover_packages_and_extension(source_tree: Path) -> None:
    expected = noxfile.expected_wheel_files(source_tree)
    assert "browser/browser_extension/error_capture/manifest.json" in expected
    assert "external_api/py.typed" in expected
    assert not any("__pycache__" in name for name in expected)


def test_complete_wheel_passes(source_tree: Path, tmp_path: Path) -> None:
    expected = noxfile.expected_wheel_files(source_tree)
    wheel = _make_wheel(tmp_path / "ok.whl", [*sorted(expected), *DIST_INFO])
    assert noxfile.wheel_problems(wheel, expected) == []


def test_wheel_missing_a_package_fails(source_tree: Path, tmp_path: Path) -> None:
    expected = noxfile.expected_wheel_files(source_tree)
    kept = [name for name in expected if not name.startswith("browser/")]
    wheel = _make_wheel(tmp_path / "bad.whl", [*kept, *DIST_INFO])
    problems = noxfile.wheel_problems(wheel, expected)
    assert "package browser is not in the wheel" in problems
    assert "browser/py.typed is not in the wheel" in problems
    manifest = "browser/browser_extension/error_capture/manifest.json"
    assert f"missing from the wheel: {manifest}" in problems


def test_wheel_with_tests_fails(source_tree: Path, tmp_path: Path) -> None:
    expected = noxfile.expected_wheel_files(source_tree)
    wheel = _make_wheel(tmp_path / "x.whl", [*expected, "tests/test_x.py", *DIST_INFO])
    assert noxfile.wheel_problems(wheel, expected) == ["unexpected in the wheel: tests/test_x.py"]


def test_pyenv_discovery_picks_newest_patch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("3.12.1", "3.12.10", "3.11.7", "3.9.18"):
        (tmp_path / "versions" / version / "bin").mkdir(parents=True)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    found = noxfile._pyenv_bin_dirs(["3.10", "3.11", "3.12"])
    assert found == [
        str(tmp_path / "versions/3.11.7/bin"),
        str(tmp_path / "versions/3.12.10/bin"),
    ]


def test_pyenv_discovery_without_pyenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "absent"))
    assert noxfile._pyenv_bin_dirs(["3.12"]) == []


def test_missing_interpreter_is_an_error(tmp_path: Path, repo_root: Path) -> None:
    """With pyenv hidden and no pythonX.Y on PATH, nox fails loudly instead of skipping."""
    bare_path = os.pathsep.join(
        [str(Path(sys.executable).parent), "/usr/bin", "/bin"]  # this venv's nox, no pyenv
    )
    missing = next(
        (v for v in noxfile.PYTHON_VERSIONS if shutil.which(f"python{v}", path=bare_path) is None),
        None,
    )
    if missing is None:  # pragma: no cover - every version is on the system PATH
        pytest.skip("every declared Python is on the bare PATH; nothing can be missing")
    env = {**os.environ, "PATH": bare_path, "PYENV_ROOT": str(tmp_path / "no-pyenv")}
    env.pop("CI", None)  # the noxfile must fail without relying on CI=true
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nox",
            f"--noxfile={repo_root / 'noxfile.py'}",
            f"--envdir={tmp_path / 'envs'}",
            f"--session=tests-{missing}",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode != 0
    assert f"Python interpreter {missing} not found" in result.stderr

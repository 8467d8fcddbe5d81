"""The distribution's metadata, version and import contract."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import browser
import external_api
from external_api.cli import main


def test_version_is_single_sourced(repo_root: Path) -> None:
    pyproject = (repo_root / "pyproject.toml").read_text()
    match = re.search(r'^current_version = "([^"]+)"', pyproject, re.MULTILINE)
    assert match is not None
    assert external_api.__version__ == match.group(1)
    assert browser.__version__ == external_api.__version__
    assert importlib.metadata.version("workspace-toolkit") == external_api.__version__


def test_console_script_is_declared() -> None:
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert {ep.value for ep in scripts if ep.name == "workspace"} == {"external_api.cli:main"}


def test_version_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == external_api.__version__


def test_module_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "external_api", "version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == external_api.__version__

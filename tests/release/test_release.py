"""`invoke release` end to end: real git repos, a real pypiserver, real builds and installs."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ports import free_port
from tests.release.conftest import (
    PASSWORD,
    USER,
    PrivateIndex,
    Project,
    sh,
    start_index,
)

pytestmark = pytest.mark.release

RELEASE = ("release", "--skip-checks")


def names(version: str) -> list[str]:
    """The sdist and wheel file names of ``version``."""
    return [f"workspace_toolkit-{version}.tar.gz", f"workspace_toolkit-{version}-py3-none-any.whl"]


def pip_install_from_index(index: PrivateIndex, version: str, where: Path) -> str:
    """Install workspace-toolkit==VERSION from the index into a fresh venv; return __version__.

    ``--no-deps``: ``import external_api`` needs no third-party package, so the check stays
    hermetic and fast (the dependencies come from the public index, not ours).
    """
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"),
            *("--no-cache-dir", "--index-url", index.simple, f"workspace-toolkit=={version}"),
        ],
        check=True,
        capture_output=True,
    )
    code = "import external_api; print(external_api.__version__, external_api.__file__)"
    found, location = sh(where, str(python), "-I", "-c", code).split()
    assert str(venv) in location  # the installed copy, not a source tree
    return found


def test_menu_help_and_version(project: Project) -> None:
    rc, out = project.run("--list")
    assert rc == 0
    for name in ("build", "changelog", "publish", "release", "version"):
        assert re.search(rf"^\s+{name}\s+\S", out, re.MULTILINE), out
    rc, out = project.run("--help", "release")
    for option in ("--part", "--dry-run", "--no-push", "--skip-checks", "--allow-empty"):
        assert option in out
    rc, out = project.run("version")
    assert rc == 0
    expected = "current: 0.1.0 major: 1.0.0 minor: 0.2.0 patch: 0.1.1"
    assert out.split() == expected.split()


@pytest.mark.slow
def test_patch_minor_major_releases_with_a_failed_push(
    project: Project, private_index: PrivateIndex, tmp_path: Path
) -> None:
    pypirc = tmp_path / "home" / ".pypirc"
    pypirc.parent.mkdir()
    pypirc.write_text(
        "[distutils]\nindex-servers =\n    private\n\n"
        f"[private]\nrepository = {private_index.url}\nusername = {USER}\npassword = {PASSWORD}\n"
    )
    via_pypirc = {"HOME": str(pypirc.parent), "TWINE_REPOSITORY_URL": ""}
    via_pypirc |= {"TWINE_USERNAME": "", "TWINE_PASSWORD": ""}
    for number, (part, new, extra, env) in enumerate(
        [
            ("patch", "0.1.1", (), None),
            ("minor", "0.2.0", (), None),
            ("major", "1.0.0", ("--repository", "private"), via_pypirc),
        ]
    ):
        text = f"Release test change number {number} for {part}."
        project.add_fragment(f"{900 + number}.feature.md", text)
        before = project.git("rev-parse", "HEAD")
        if part == "minor":
            uploaded = push_fails_then_rerun_converges(project, private_index, new)
            rc, out = project.run(*RELEASE, "--part", part)  # done: nothing left to do
            assert rc == 0, out
            assert f"Release {new} is complete" in out
            assert "nothing to push" in out
            assert {n: _mtime(private_index, n) for n in names(new)} == uploaded
        else:
            rc, out = project.run(*RELEASE, "--part", part, *extra, env=env)
            assert rc == 0, out
        # One release commit, an annotated tag on it, pushed atomically.
        assert project.git("rev-list", "--count", f"{before}..HEAD") == "1"
        assert project.git("log", "-1", "--format=%s") == f"Release {new}"
        assert project.git("cat-file", "-t", f"v{new}") == "tag"
        assert project.git("rev-parse", f"v{new}^{{commit}}") == project.git("rev-parse", "HEAD")
        assert project.git("status", "--porcelain") == ""
        assert project.git("for-each-ref", "refs/release-backup/") == ""
        assert (
            sh(project.origin, "git", "rev-parse", "main", f"v{new}^{{commit}}").split()
            == [project.git("rev-parse", "HEAD")] * 2
        )
        # Version files, changelog section, fragments consumed.
        assert f'current_version = "{new}"' in (project.path / "pyproject.toml").read_text()
        init = (project.path / "external_api" / "__init__.py").read_text()
        assert f'__version__ = "{new}"' in init
        changelog = (project.path / "CHANGELOG.md").read_text()
        assert re.search(rf"^## {re.escape(new)} \(\d{{4}}-\d\d-\d\d\)$", changelog, re.MULTILINE)
        assert text in changelog
        assert sorted(p.name for p in (project.path / "newsfragments").iterdir()) == ["README.md"]
        # The index serves the files, and pip installs the right version from it.
        assert set(names(new)) <= set(private_index.files())
        assert pip_install_from_index(private_index, new, tmp_path / part) == new


def test_dry_run_changes_nothing(project: Project, private_index: PrivateIndex) -> None:
    project.add_fragment("901.bugfix.md", "Dry runs print the plan.")
    before, files = project.state(), private_index.files()
    url = private_index.url.replace("http://", f"http://{USER}:{PASSWORD}@")
    rc, out = project.run(
        "release", "--part", "minor", "--dry-run", env={"TWINE_REPOSITORY_URL": url}
    )
    assert rc == 0, out
    assert "0.1.0 -> 0.2.0 (minor), tag v0.2.0 on main" in out
    for changed in ("CHANGELOG.md", "pyproject.toml", "external_api/__init__.py"):
        assert f"  {changed}\n" in out
    assert "newsfragments/901.bugfix.md (removed)" in out
    assert "## 0.2.0" in out
    assert "Dry runs print the plan." in out
    assert "gates:   nox (the default sessions)" in out
    assert "git push --atomic origin main v0.2.0" in out
    assert f"index:   {private_index.url} (user {USER}, password ****)" in out
    assert PASSWORD not in out
    assert project.state() == before
    assert private_index.files() == files


def _break_preflight(project: Project, fault: str, index: PrivateIndex) -> dict[str, str]:
    """Set up ``fault`` in the clone; return the environment overrides it needs."""
    path = project.path
    if fault == "dirty tree":
        (path / "README.md").write_text("changed\n")
    elif fault == "untracked file":
        (path / "notes.txt").write_text("not committed\n")
    elif fault == "existing tag":  # e.g. cut from another branch: not reachable from HEAD
        project.git("tag", "v0.1.1", project.git("commit-tree", "HEAD^{tree}", "-m", "elsewhere"))
    elif fault == "tag on origin":
        project.git("tag", "v0.1.1", project.git("commit-tree", "HEAD^{tree}", "-m", "elsewhere"))
        project.git("push", "-q", "origin", "v0.1.1")
        project.git("tag", "-d", "v0.1.1")
    elif fault == "behind origin":
        project.git("commit", "-q", "--allow-empty", "-m", "someone else's work")
        project.git("push", "-q", "origin", "main")
        project.git("reset", "-q", "--hard", "HEAD~1")
    elif fault == "wrong branch":
        project.git("switch", "-q", "-c", "feature")
    elif fault == "no fragments":
        project.git("rm", "-q", "newsfragments/*.*.md")
        project.git("commit", "-qm", "no fragments")
    elif fault == "versions differ":
        init = path / "external_api" / "__init__.py"
        init.write_text(init.read_text().replace('"0.1.0"', '"0.1.5"'))
        project.git("commit", "-qam", "hand-edited version")
    elif fault == "stale dist":
        (path / "dist").mkdir()
        (path / "dist" / "workspace_toolkit-0.0.9-py3-none-any.whl").write_bytes(b"old")
    elif fault == "index down":
        return {"TWINE_REPOSITORY_URL": f"http://127.0.0.1:{free_port()}/"}
    elif fault == "wrong password":
        return {"TWINE_PASSWORD": "not-the-password"}
    elif fault == "no index configured":
        return {"TWINE_REPOSITORY_URL": ""}
    elif fault == "public index":
        return {"TWINE_REPOSITORY_URL": "https://upload.pypi.org/legacy/"}
    return {}


PREFLIGHT_FAULTS = {
    "dirty tree": "not clean",
    "untracked file": "notes.txt",
    "existing tag": "Tag v0.1.1 already exists",
    "tag on origin": "already exists on origin",
    "behind origin": "behind origin",
    "wrong branch": "HEAD is on 'feature'",
    "no fragments": "--allow-empty",
    "versions differ": "make them agree",
    "stale dist": "rm -rf dist",
    "index down": "Cannot reach the index",
    "wrong password": "rejected the credentials",
    "no index configured": "TWINE_REPOSITORY_URL",
    "public index": "private",
}


@pytest.mark.parametrize("fault", sorted(PREFLIGHT_FAULTS))
def test_preflight_fault_changes_nothing(
    project: Project, private_index: PrivateIndex, fault: str
) -> None:
    project.add_fragment("902.feature.md", "A change.")
    env = _break_preflight(project, fault, private_index)
    before, files = project.state(), private_index.files()
    rc, out = project.run(*RELEASE, "--part", "patch", env=env)
    assert rc == 1, out
    assert PREFLIGHT_FAULTS[fault] in out
    assert "==> changelog" not in out  # it stopped before changing anything
    assert project.state() == before
    assert private_index.files() == files


def _assert_rolled_back(project: Project, before: dict[str, str], out: str) -> None:
    assert "Rolled back" in out
    assert project.state() == before
    assert project.git("tag", "--list", "v0.1.1") == ""


@pytest.mark.slow
def test_gates_run_unless_skipped(project: Project, tmp_path: Path) -> None:
    marker = tmp_path / "gate-ran"
    noxfile = project.path / "noxfile.py"
    noxfile.write_text(
        noxfile.read_text().replace('\nif __name__ == "__main__"', "\nif False")
        + "\n\nnox.options.sessions = ['gate']\n\n\n@nox.session(python=False)\n"
        + "def gate(session: nox.Session) -> None:\n"
        + '    """A stand-in for the pipeline that fails."""\n'
        + f"    session.run('touch', {str(marker)!r}, external=True)\n"
        + "    session.error('the gate failed')\n"
    )
    project.git("commit", "-qam", "a failing gate")
    project.add_fragment("903.feature.md", "A change.")
    before = project.state()
    rc, out = project.run("release", "--part", "patch")
    assert rc == 1, out
    assert "The quality gates (nox) failed" in out
    assert marker.exists()
    assert project.state() == before


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["failing build", "failing twine check"])
def test_build_fault_rolls_back(project: Project, private_index: PrivateIndex, fault: str) -> None:
    pyproject = project.path / "pyproject.toml"
    if fault == "failing build":
        text = pyproject.read_text().replace(
            'path = "external_api/__init__.py"', 'path = "external_api/missing.py"'
        )
    else:
        (project.path / "README.rst").write_text("Title\n=====\n\n.. no-such-directive::\n")
        project.git("add", "README.rst")
        text = pyproject.read_text().replace('readme = "README.md"', 'readme = "README.rst"')
    pyproject.write_text(text)
    project.git("commit", "-qam", fault)
    project.add_fragment("904.feature.md", "A change.")
    before, files = project.state(), private_index.files()
    rc, out = project.run(*RELEASE, "--part", "patch")
    assert rc == 1, out
    assert "The build (nox -s build, incl. twine check --strict) failed" in out
    if fault == "failing twine check":
        assert "twine check --strict" in out
        assert "FAILED" in out
    _assert_rolled_back(project, before, out)
    assert private_index.files() == files


def _start_and_wait_for_build(
    project: Project, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], list[str]]:
    proc = project.invoke(*RELEASE, "--part", "patch", env=env)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("==> build"):
            return proc, seen
    raise AssertionError("the release never reached the build:\n" + "".join(seen))


@pytest.mark.slow
def test_sigint_during_build_rolls_back(project: Project, private_index: PrivateIndex) -> None:
    project.add_fragment("905.feature.md", "A change.")
    before, files = project.state(), private_index.files()
    proc, seen = _start_and_wait_for_build(project)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    out = "".join(seen) + rest
    project.outputs.append(out)
    assert proc.returncode == 130, out
    assert "Interrupted" in out
    _assert_rolled_back(project, before, out)
    assert private_index.files() == files


@pytest.mark.slow
def test_index_down_before_upload_rolls_back(project: Project, tmp_path: Path) -> None:
    index = start_index(tmp_path / "short-lived")
    try:
        project.add_fragment("906.feature.md", "A change.")
        before = project.state()
        proc, seen = _start_and_wait_for_build(project, {"TWINE_REPOSITORY_URL": index.url})
        index.stop()
        rest, _ = proc.communicate(timeout=100)
    finally:
        index.stop()
    out = "".join(seen) + rest
    project.outputs.append(out)
    assert proc.returncode == 1, out
    assert "Cannot reach the index" in out
    _assert_rolled_back(project, before, out)
    assert index.files() == []


def _mtime(index: PrivateIndex, name: str) -> int:
    return (index.packages / name).stat().st_mtime_ns


def push_fails_then_rerun_converges(
    project: Project, private_index: PrivateIndex, new: str
) -> dict[str, int]:
    """Release with origin refusing the push, then re-run; return the files' upload times.

    The failed push keeps the published release and prints the command that finishes it;
    the re-run pushes without uploading again.
    """
    hook = project.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'origin is read-only today' >&2\nexit 1\n")
    hook.chmod(0o755)
    rc, out = project.run(*RELEASE, "--part", "minor")
    assert rc == 1, out
    assert f"v{new} is published on" in out
    assert f"  git push --atomic origin main v{new}\n" in out
    assert "Rolled back" not in out
    assert project.git("rev-parse", f"v{new}^{{commit}}") == project.git("rev-parse", "HEAD")
    assert f"v{new}" not in sh(project.origin, "git", "tag", "--list")
    uploaded = {name: _mtime(private_index, name) for name in names(new)}
    hook.unlink()
    rc, out = project.run(*RELEASE, "--part", "minor")
    assert rc == 0, out
    assert "completing it instead of cutting a new one" in out
    assert "==> upload" not in out
    assert "==> push" in out
    assert {name: _mtime(private_index, name) for name in names(new)} == uploaded
    return uploaded


def test_changelog_publish_and_allow_empty(project: Project, private_index: PrivateIndex) -> None:
    project.add_fragment("908.doc.md", "Documented the release.")
    before = project.state()
    rc, out = project.run("changelog", "--draft", "--version", "9.9.9")
    assert rc == 0, out
    assert "## 9.9.9" in out
    assert "Documented the release. (#908)" in out
    rc, out = project.run("publish")
    assert rc == 1
    assert "run `invoke build` first" in out
    assert project.state() == before
    project.git("rm", "-q", "newsfragments/*.*.md")
    project.git("commit", "-qm", "no fragments")
    rc, out = project.run("release", "--dry-run", "--allow-empty")
    assert rc == 0, out
    assert "No significant changes." in out
    assert private_index.files() == []

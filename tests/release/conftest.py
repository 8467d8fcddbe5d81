"""Fixtures for the release tests: a real private index and real git repositories.

``private_index`` is a real pypiserver (with passlib-checked htpasswd credentials) on a free
127.0.0.1 port, shared by the whole session. ``project`` is a fresh clone of a copy of this
project (its tracked files, as they are in the work tree) with a local bare repository as
``origin``; ``release`` runs ``invoke`` in it as a subprocess, the way a developer would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # passlib (unmaintained upstream) imports the stdlib `crypt` module, deprecated in 3.11+.
    warnings.simplefilter("ignore", DeprecationWarning)
    from passlib.apache import HtpasswdFile

from tests.conftest import REPO_ROOT
from tests.ports import free_port

VENV_BIN = Path(sys.executable).parent
USER = "releaser"
PASSWORD = "s3cret-Pa55-word-for-tests"  # the tests grep every output for it
# The content of every file git would see (tracked or untracked, not ignored).
TREE_HASH = "git ls-files -co --exclude-standard | git hash-object --stdin-paths | sha256sum"


@dataclass
class PrivateIndex:
    """A running pypiserver: upload URL, credentials, and the folder it serves."""

    url: str
    packages: Path
    htpasswd: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def simple(self) -> str:
        """The simple-API URL with credentials, as pip takes it."""
        return self.url.replace("http://", f"http://{USER}:{PASSWORD}@") + "simple/"

    def files(self) -> list[str]:
        """The file names the index holds (the folder pypiserver serves)."""
        return sorted(path.name for path in self.packages.iterdir())

    def stop(self) -> None:
        """Stop the server by its PID and wait for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_index(root: Path, auth: str = "update,download,list") -> PrivateIndex:
    """Start pypiserver serving ``root/packages`` and wait until it answers."""
    packages = root / "packages"
    packages.mkdir(parents=True)
    htpasswd = root / "htpasswd"
    users = HtpasswdFile(str(htpasswd), new=True)
    users.set_password(USER, PASSWORD)
    users.save()
    port = free_port()
    with (root / "pypiserver.log").open("wb") as log:  # the child keeps its own copy
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "pypiserver", "run", "-p", str(port), "-i", "127.0.0.1"),
                *("-a", auth, "-P", str(htpasswd), "--disable-fallback"),
                *("--backend", "simple-dir", str(packages)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    index = PrivateIndex(f"http://127.0.0.1:{port}/", packages, htpasswd, process)
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{index.url}health", timeout=2):  # noqa: S310
                return index
        except (urllib.error.URLError, ConnectionError) as error:
            if process.poll() is not None or time.monotonic() > deadline:
                index.stop()
                log_file = root / "pypiserver.log"
                raise RuntimeError(f"pypiserver did not start; see {log_file}") from error
            time.sleep(0.1)


@pytest.fixture(scope="session")
def private_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateIndex]:
    """A real pypiserver with htpasswd auth for upload, download and listing."""
    index = start_index(tmp_path_factory.mktemp("index"))
    yield index
    index.stop()


def sh(cwd: Path, *args: str, check: bool = True) -> str:
    """Run a command in ``cwd`` and return its stdout (stripped)."""
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip()


def make_template(where: Path) -> Path:
    """Make a bare git repository holding one commit: this project's tracked files as they are."""
    tree = where / "tree"
    listed = sh(REPO_ROOT, "git", "ls-files", "-z").split("\0")
    for name in filter(None, listed):
        source = REPO_ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    sh(tree, "git", "init", "-q", "-b", "main")
    sh(tree, "git", "add", "--all")
    sh(tree, "git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "base")
    bare = where / "template.git"
    sh(where, "git", "clone", "-q", "--bare", str(tree), str(bare))
    return bare


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project as a bare repository (made once per session)."""
    return make_template(tmp_path_factory.mktemp("template"))


@dataclass
class Project:
    """A work clone of the project with ``origin`` a bare repo, and how to run invoke in it."""

    path: Path
    origin: Path
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)

    def git(self, *args: str) -> str:
        """Run git in the work clone and return its stdout."""
        return sh(self.path, "git", *args)

    def invoke(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start ``invoke ARGS`` in the clone (stdout+stderr merged into a pipe)."""
        return subprocess.Popen(
            [str(VENV_BIN / "invoke"), *args],
            cwd=self.path,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run ``invoke ARGS`` to the end; return (exit code, output). Output is recorded."""
        proc = self.invoke(*args, env=env)
        output, _ = proc.communicate(timeout=110)
        self.outputs.append(output)
        return proc.returncode, output

    def add_fragment(self, name: str, text: str) -> None:
        """Commit a news fragment ``newsfragments/NAME``."""
        (self.path / "newsfragments" / name).write_text(text + "\n", encoding="utf-8")
        self.git("add", "newsfragments")
        self.git("commit", "-qm", f"add {name}")

    def state(self) -> dict[str, str]:
        """Everything a failed release must leave unchanged: refs, HEAD, index, tree, dist/."""
        dist = self.path / "dist"
        return {
            "refs": self.git("for-each-ref", "--format=%(objectname) %(refname)"),
            "head": self.git("rev-parse", "HEAD") + " " + self.git("symbolic-ref", "HEAD"),
            "index": self.git("ls-files", "--stage"),
            "status": self.git("status", "--porcelain", "--untracked-files=all"),
            "tree": sh(self.path, "sh", "-c", TREE_HASH),
            "dist": " ".join(sorted(p.name for p in dist.iterdir())) if dist.is_dir() else "",
            "origin": sh(self.origin, "git", "for-each-ref"),
        }


@pytest.fixture(scope="session")
def nox_envdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One nox envdir for every clone: the `build` session's venv is made once."""
    return tmp_path_factory.mktemp("nox-envs")


def make_project(where: Path, template: Path, index: PrivateIndex, nox_envdir: Path) -> Project:
    """Clone ``template`` into ``where/work`` with ``where/origin.git`` as its origin.

    The environment points twine at ``index`` (with the test credentials), nox at the shared
    ``nox_envdir``, and PATH at this interpreter's environment first.
    """
    origin = where / "origin.git"
    sh(where, "git", "clone", "-q", "--bare", str(template), str(origin))
    work = where / "work"
    sh(where, "git", "clone", "-q", str(origin), str(work))
    for key, value in {"user.name": "Release Tests", "user.email": "rt@example.org"}.items():
        sh(work, "git", "config", key, value)
    sh(work, "git", "config", "commit.gpgsign", "false")
    sh(work, "git", "config", "tag.gpgsign", "false")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWINE_", "COV_", "COVERAGE_", "PYTEST_", "NOX_"))
    }
    env.update(
        PATH=os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),
        TWINE_REPOSITORY_URL=index.url,
        TWINE_USERNAME=USER,
        TWINE_PASSWORD=PASSWORD,
        WORKSPACE_NOX_ENVDIR=str(nox_envdir),
        PYTHONDONTWRITEBYTECODE="1",
        UV_CACHE_DIR=sh(REPO_ROOT, "uv", "cache", "dir"),
    )
    return Project(work, origin, env)


@pytest.fixture
def project(
    tmp_path: Path, template: Path, private_index: PrivateIndex, nox_envdir: Path
) -> Iterator[Project]:
    """A fresh clone of the template whose origin is its own bare repo, ready to release.

    The shared index starts each test empty. At teardown, no output of any invoke run in the
    project may contain the password.
    """
    for old in private_index.packages.iterdir():
        old.unlink()
    project = make_project(tmp_path, template, private_index, nox_envdir)
    yield project
    leaked = [out for out in project.outputs if PASSWORD in out]
    assert not leaked, f"the password was printed:\n{leaked[0]}"

"""The plumbing of the release tasks (tasks.py): commands, versions and the private index.

Owns: running commands with their output redacted (credentials are never printed), the
version numbers (bump-my-version is the one calculator), the exact artifact names, and the
private index: resolving it the way twine does, reading its simple API, uploading to it.
Nothing here changes the git repository.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from invoke.exceptions import Exit

ROOT = Path(__file__).resolve().parent
PROJECT = "workspace-toolkit"
DIST = ROOT / "dist"
PUBLIC_HOSTS = ("pypi.org", "pythonhosted.org", "pypi.python.org")
PARTS = ("major", "minor", "patch")
# Where nox keeps its venvs (`nox --envdir`); unset means nox's default `.nox/`.
NOX_ENVDIR_VAR = "WORKSPACE_NOX_ENVDIR"
# The index's simple API, when it is not `<upload URL>/simple/` (e.g. devpi's `+simple/`).
SIMPLE_URL_VAR = "WORKSPACE_RELEASE_SIMPLE_URL"
# Python tools run from this interpreter's environment, whatever PATH says.
PY = (sys.executable, "-m")
_SECRETS: set[str] = set()
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """Return ``text`` with every known secret and every URL's ``user:password@`` masked."""
    for secret in _SECRETS:
        text = text.replace(secret, "****")
    return _USERINFO.sub(r"\g<scheme>****@", text)


def step(title: str) -> None:
    """Announce a release step as a ``==> title`` line (flushed, so watchers see it at once)."""
    print(f"==> {title}", flush=True)


def run(
    args: Sequence[str | Path],
    *,
    capture: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run ``args``; stream its output redacted (or capture it) and return the result.

    The child never sees ``TWINE_PASSWORD`` unless ``env`` passes it explicitly. On Ctrl-C
    the child gets SIGINT too, is waited for, and the KeyboardInterrupt propagates.
    """
    full_env = {k: v for k, v in os.environ.items() if k != "TWINE_PASSWORD"}
    full_env.update(env or {})
    argv = [str(arg) for arg in args]
    if capture:
        return subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True)
    with subprocess.Popen(
        argv, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        try:
            assert proc.stdout is not None  # noqa: S101 - stdout=PIPE above guarantees it
            for line in proc.stdout:
                sys.stdout.write(redact(line))
                sys.stdout.flush()
            returncode = proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)
            proc.wait()
            raise
    return subprocess.CompletedProcess(argv, returncode, "", "")


def git(*args: str) -> str:
    """Run a read-only git command and return its stripped stdout; fail with git's message."""
    result = run(["git", *args], capture=True)
    if result.returncode != 0:
        raise Exit(f"`git {' '.join(args)}` failed: {redact(result.stderr.strip())}")
    return result.stdout.strip()


def remote_refs(*patterns: str) -> dict[str, str]:
    """Return ``{ref name: sha}`` of origin's refs matching ``patterns`` (read-only)."""
    listing = git("ls-remote", "origin", *patterns)
    return {name: sha for sha, _, name in (line.partition("\t") for line in listing.splitlines())}


def ok(args: Sequence[str | Path], what: str, fix: str) -> None:
    """Run ``args`` with its output streamed; on a non-zero exit raise Exit naming ``what``."""
    if run(args).returncode != 0:
        raise Exit(f"{what} failed (see the output above). {fix}")


def read_version(path: Path, pattern: str) -> str:
    """Return the first group of ``pattern`` in ``path``; raise Exit when it is absent."""
    match = re.search(pattern, path.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise Exit(f"{path.relative_to(ROOT)} has no version matching {pattern!r}.")
    return match.group(1)


def current_version() -> str:
    """Return the version recorded in pyproject.toml's ``[tool.bumpversion]``."""
    return read_version(ROOT / "pyproject.toml", r'^current_version = "([^"]+)"')


def bump_plan(part: str) -> tuple[str, list[str]]:
    """Return the version ``part`` would give and the files bump-my-version rewrites."""
    if part not in PARTS:
        raise Exit(f"--part must be one of {', '.join(PARTS)}, not {part!r}.")
    result = run(
        [*PY, "bumpversion", "show", "--increment", part, "new_version", "files", "--format=json"],
        capture=True,
    )
    if result.returncode != 0:
        raise Exit(f"bump-my-version cannot compute the {part} bump: {result.stderr.strip()}")
    shown = json.loads(result.stdout)
    return shown["new_version"], ["pyproject.toml", *(f["filename"] for f in shown["files"])]


def artifact_names(version: str) -> list[str]:
    """Return the exact file names the build produces for ``version`` (sdist, wheel)."""
    stem = f"{PROJECT.replace('-', '_')}-{version}"
    return [f"{stem}.tar.gz", f"{stem}-py3-none-any.whl"]


@dataclass(frozen=True)
class Index:
    """The private index: upload URL (no credentials in it) and the credentials for it."""

    url: str
    username: str
    password: str
    repository: str | None

    @property
    def simple_url(self) -> str:
        """The project's page on the index's simple API (PEP 503)."""
        base = os.environ.get(SIMPLE_URL_VAR) or re.sub(r"/legacy/?$", "", self.url.rstrip("/"))
        if not os.environ.get(SIMPLE_URL_VAR):
            base += "/simple"
        return f"{base.rstrip('/')}/{PROJECT}/"

    def twine_env(self) -> dict[str, str]:
        """Environment for twine: the URL (unless a .pypirc name is used) and credentials."""
        env = {"TWINE_USERNAME": self.username, "TWINE_PASSWORD": self.password}
        env["TWINE_NON_INTERACTIVE"] = "1"
        if self.repository is None:
            env["TWINE_REPOSITORY_URL"] = self.url
        return env


def resolve_index(repository: str | None) -> Index:
    """Resolve the private index the way twine does: env vars, else a ``~/.pypirc`` section.

    ``TWINE_REPOSITORY_URL`` wins over ``--repository`` / ``TWINE_REPOSITORY``;
    ``TWINE_USERNAME`` / ``TWINE_PASSWORD`` win over the section's values. The public index
    is refused: this distribution is private.
    """
    env = os.environ
    name = repository or env.get("TWINE_REPOSITORY") or None
    url, user, password = (
        env.get(k) or None for k in ("TWINE_REPOSITORY_URL", "TWINE_USERNAME", "TWINE_PASSWORD")
    )
    if name is not None and url is None:
        pypirc = Path.home() / ".pypirc"
        config = configparser.RawConfigParser()
        config.read(pypirc, encoding="utf-8")
        servers = config.get("distutils", "index-servers", fallback="pypi testpypi").split()
        if name not in servers or not config.has_option(name, "repository"):
            raise Exit(
                f"{pypirc} does not define the index {name!r}: list it under [distutils] "
                f"index-servers and give it a [{name}] section with repository, username and "
                "password (see docs/releasing.md)."
            )
        url = config.get(name, "repository")
        user = user or config.get(name, "username", fallback=None)
        password = password or config.get(name, "password", fallback=None)
    if url is None:
        raise Exit(
            "No private index configured: set TWINE_REPOSITORY_URL, TWINE_USERNAME and "
            "TWINE_PASSWORD, or pass --repository NAME for a section of ~/.pypirc "
            "(see docs/releasing.md)."
        )
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        _SECRETS.add(urllib.parse.unquote(parts.password))
    user = user or urllib.parse.unquote(parts.username or "") or None
    password = password or urllib.parse.unquote(parts.password or "") or None
    url = urllib.parse.urlunsplit(
        parts._replace(
            netloc=parts.hostname or "" if parts.port is None else f"{parts.hostname}:{parts.port}"
        )
    )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Exit(f"The index URL {redact(url)!r} is not an http(s) URL.")
    if parts.hostname.endswith(PUBLIC_HOSTS):
        raise Exit(f"{PROJECT} is private: refusing to publish to the public index {url}.")
    if user is None or password is None:
        raise Exit(f"No credentials for {url}: set TWINE_USERNAME and TWINE_PASSWORD (or .pypirc).")
    _SECRETS.add(password)
    return Index(url=url, username=user, password=password, repository=name)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect (e.g. pypiserver's fallback to PyPI) means "not on this index"


def served_files(index: Index) -> dict[str, str]:
    """Return ``{file name: sha256 or ""}`` of the project's files the index serves."""
    request = urllib.request.Request(index.simple_url)  # noqa: S310 - scheme checked in resolve_index
    token = base64.b64encode(f"{index.username}:{index.password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        opener = urllib.request.build_opener(_NoRedirect)
        with opener.open(request, timeout=30) as response:  # nosec B310 - http(s) only, checked
            page = response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        if error.code in (301, 302, 303, 307, 308, 404):
            return {}
        if error.code in (401, 403):
            raise Exit(
                f"The index {index.url} rejected the credentials (HTTP {error.code}): "
                "check TWINE_USERNAME / TWINE_PASSWORD (or the .pypirc section)."
            ) from None
        raise Exit(f"The index {index.url} answered HTTP {error.code}: is it healthy?") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise Exit(
            f"Cannot reach the index {index.url} ({reason}): start it or fix its URL."
        ) from None
    files: dict[str, str] = {}
    for href in re.findall(r'href="([^"]+)"', page):
        link = urllib.parse.urlsplit(href)
        sha = re.search(r"sha256=([0-9a-f]{64})", link.fragment)
        files[Path(urllib.parse.unquote(link.path)).name] = sha.group(1) if sha else ""
    return files


def nox(*args: str) -> list[str]:
    """Return the command line running nox with ``args`` (and ``$WORKSPACE_NOX_ENVDIR``)."""
    envdir = os.environ.get(NOX_ENVDIR_VAR)
    return [*PY, "nox", *(["--envdir", envdir] if envdir else []), *args]


def upload(index: Index, artifacts: Sequence[Path]) -> None:
    """Upload what the index lacks of ``artifacts`` with twine, then verify it serves them all.

    Idempotent: files the index already serves are not uploaded again. A served file whose
    sha256 differs from the local one is an error (never overwritten).
    """
    step(f"upload: twine upload to {redact(index.url)}")
    served = served_files(index)
    todo = [a for a in artifacts if a.name not in served]
    if todo:
        args = [*PY, "twine", "upload", "--disable-progress-bar"]
        args += ["--repository", index.repository] if index.repository else []
        if run([*args, *todo], env=index.twine_env()).returncode != 0:
            raise Exit(f"twine upload to {index.url} failed (see above).")
    served = served_files(index)
    for artifact in artifacts:
        if artifact.name not in served:
            raise Exit(f"The index does not serve {artifact.name} after the upload.")
        local = hashlib.sha256(artifact.read_bytes()).hexdigest()
        if served[artifact.name] not in ("", local):
            raise Exit(f"The index serves a different {artifact.name} (sha256 differs).")
    print(f"the index serves {', '.join(a.name for a in artifacts)}")


def published_any(index: Index, version: str) -> bool:
    """Return whether the index serves any artifact of ``version`` (False when unreachable)."""
    try:
        return bool(set(artifact_names(version)) & set(served_files(index)))
    except Exit:
        return False

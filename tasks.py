"""Release tasks for workspace-toolkit (invoke): ``invoke --list`` is the menu.

A release is a transaction (``invoke release --part minor``): preflight checks that change
nothing, the quality gates, then changelog + bump + one commit + an annotated tag, build,
test-install and upload to the private index, and an atomic push. A failure or Ctrl-C before
the upload restores the repository exactly; after the upload the release is kept and a re-run
finishes it instead of publishing twice. release_support.py holds the plumbing;
docs/releasing.md is the user's guide.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from release_support import (
    DIST,
    PARTS,
    PROJECT,
    PY,
    ROOT,
    Index,
    artifact_names,
    bump_plan,
    current_version,
    git,
    nox,
    ok,
    published_any,
    read_version,
    redact,
    remote_refs,
    resolve_index,
    run,
    served_files,
    step,
    upload,
)

VERSION_FILE = ROOT / "external_api" / "__init__.py"
FRAGMENTS = ROOT / "newsfragments"
BACKUP_REFS = "refs/release-backup/"


def fragments() -> list[str]:
    """Return the news fragments waiting in newsfragments/ (README.md is documentation)."""
    return sorted(
        p.name
        for p in FRAGMENTS.iterdir()
        if p.is_file() and p.name != "README.md" and not p.name.startswith(".")
    )


def stale_dist(version: str) -> list[str]:
    """Return what dist/ holds besides ``version``'s own artifacts (the last release's)."""
    present = sorted(p.name for p in DIST.iterdir()) if DIST.is_dir() else []
    return [name for name in present if name not in artifact_names(version)]


@dataclass(frozen=True)
class Plan:
    """What preflight found: the versions, the tag, the index and the push to make."""

    current: str
    new: str
    tag: str
    branch: str
    index: Index
    has_origin: bool
    files: list[str]


def preflight(part: str, branch: str, repository: str | None, allow_empty: bool) -> Plan:
    """Check everything a release needs, changing nothing; return the plan or raise Exit."""
    if run(["git", "rev-parse", "--show-toplevel"], capture=True).stdout.strip() != str(ROOT):
        raise Exit(f"{ROOT} is not the top of a git work tree: release from a clone.")
    dirty = git("status", "--porcelain", "--untracked-files=normal")
    if dirty:
        raise Exit(f"The work tree is not clean; commit or stash first:\n{dirty}")
    on = run(["git", "symbolic-ref", "--short", "-q", "HEAD"], capture=True).stdout.strip()
    if on != branch:
        raise Exit(f"Releases are cut from {branch!r}, but HEAD is on {on or 'no branch'!r}.")
    leftover = git("for-each-ref", "--format=%(refname)", BACKUP_REFS)
    if leftover:
        raise Exit(
            f"An interrupted release left {leftover}: restore with `git reset --hard {leftover}`"
            f" (and delete its tag), then `git update-ref -d {leftover}`."
        )
    current = current_version()
    in_code = read_version(VERSION_FILE, r'^__version__ = "([^"]+)"')
    if in_code != current:
        raise Exit(f"pyproject.toml says {current} but __version__ is {in_code}: make them agree.")
    last = run(["git", "describe", "--tags", "--abbrev=0", "--match=v[0-9]*"], capture=True)
    if last.returncode == 0 and last.stdout.strip() != f"v{current}":
        raise Exit(f"The last tag is {last.stdout.strip()} but the version is {current}: fix that.")
    waiting = fragments()
    if not waiting and not allow_empty:
        raise Exit("No news fragments in newsfragments/: add one, or pass --allow-empty.")
    index = resolve_index(repository)
    served = served_files(index)  # also proves the index is up and takes the credentials
    stale = stale_dist(current)
    if stale:
        raise Exit(f"dist/ holds files of no release ({', '.join(stale)}): `rm -rf dist` first.")
    new, files = bump_plan(part)
    tag = f"v{new}"
    if run(["git", "rev-parse", "-q", "--verify", f"refs/tags/{tag}"], capture=True).stdout:
        raise Exit(f"Tag {tag} already exists: {new} was released; delete the tag if it was not.")
    if set(artifact_names(new)) & set(served):
        raise Exit(f"The index already serves {PROJECT} {new}: bump further or clean the index.")
    has_origin = "origin" in git("remote").split()
    if has_origin:
        refs = remote_refs(f"refs/heads/{branch}", f"refs/tags/{tag}")
        if f"refs/tags/{tag}" in refs:
            raise Exit(f"Tag {tag} already exists on origin: {new} was released elsewhere.")
        head = refs.get(f"refs/heads/{branch}")
        # Not an ancestor of HEAD (or unknown here, exit 128): origin has commits we lack.
        if (
            head
            and run(["git", "merge-base", "--is-ancestor", head, "HEAD"], capture=True).returncode
        ):
            raise Exit(f"{branch} is behind origin: `git pull --ff-only origin {branch}` first.")
    changed = ["CHANGELOG.md", *files, *(f"newsfragments/{name} (removed)" for name in waiting)]
    return Plan(current, new, tag, branch, index, has_origin, changed)


class Txn:
    """The state of a release transaction: once ``published``, a failure keeps the release."""

    published = False


@contextmanager
def transaction(tag: str) -> Iterator[Txn]:
    """Undo everything on failure or Ctrl-C: HEAD, index, work tree, tag and dist/.

    A backup ref (``refs/release-backup/<tag>``) records HEAD first, so even a killed process
    leaves a way back (preflight names it). On success the backup ref is deleted.
    """
    backup = f"{BACKUP_REFS}{tag}"
    git("update-ref", backup, "HEAD")
    with tempfile.TemporaryDirectory(prefix="release-dist-") as saved:
        if DIST.is_dir():
            shutil.copytree(DIST, Path(saved) / "dist")
        txn = Txn()
        try:
            yield txn
        except BaseException:
            if txn.published:
                git("update-ref", "-d", backup)
                raise
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish the undo
            try:
                if run(
                    ["git", "rev-parse", "-q", "--verify", f"refs/tags/{tag}"], capture=True
                ).stdout:
                    git("tag", "-d", tag)
                git("reset", "--quiet", "--hard", backup)
                git("update-ref", "-d", backup)
                shutil.rmtree(DIST, ignore_errors=True)
                if (Path(saved) / "dist").is_dir():
                    shutil.copytree(Path(saved) / "dist", DIST)
                print("Rolled back: the repository is exactly as it was.", file=sys.stderr)
            finally:
                signal.signal(signal.SIGINT, previous)
            if isinstance(sys.exc_info()[1], KeyboardInterrupt):
                raise Exit("Interrupted (Ctrl-C): the release was rolled back.", code=130) from None
            raise
    git("update-ref", "-d", backup)


def build_and_test_install(version: str) -> list[Path]:
    """Run the ``build`` nox session, then install the wheel in a throwaway venv and import it.

    The venv gets the wheel with ``--no-deps``: ``import external_api`` needs no third-party
    package, so the check is hermetic and fast. Returns the artifacts (sdist, wheel).
    """
    step(f"build: nox -s build ({PROJECT} {version})")
    ok(
        nox("-s", "build"),
        "The build (nox -s build, incl. twine check --strict)",
        "Fix it and re-run.",
    )
    artifacts = [DIST / name for name in artifact_names(version)]
    missing = [a.name for a in artifacts if not a.is_file()]
    if missing:
        raise Exit(f"The build did not produce {', '.join(missing)}: check the version files.")
    step("test-install: the wheel in a throwaway venv")
    if shutil.which("uv") is None:
        raise Exit("uv is needed for the test install: `python3 -m pip install uv`.")
    with tempfile.TemporaryDirectory(prefix="release-venv-") as tmp:
        venv = Path(tmp) / "venv"
        ok(["uv", "venv", "-q", "--python", sys.executable, venv], "Creating the venv", "")
        python = venv / "bin" / "python"
        ok(
            ["uv", "pip", "install", "-q", "--python", python, "--no-deps", artifacts[1]],
            "Installing the wheel",
            "Check the wheel's metadata.",
        )
        code = "import external_api; print(external_api.__version__)"
        got = run([python, "-I", "-c", code], capture=True, cwd=Path(tmp))
    if got.returncode != 0 or got.stdout.strip() != version:
        raise Exit(
            f"The installed wheel reports {got.stdout.strip() or got.stderr!r}, not {version}."
        )
    print(f"installed and imported: external_api {version}")
    return artifacts


def push(branch: str, tag: str, index: Index) -> None:
    """Push ``branch`` and ``tag`` to origin atomically; on failure say how to finish."""
    step(f"push: git push --atomic origin {branch} {tag}")
    if run(["git", "push", "--atomic", "origin", branch, tag]).returncode != 0:
        raise Exit(
            f"{tag} is published on {index.url} but the push failed (see above). Finish it with:\n"
            f"  git push --atomic origin {branch} {tag}\n"
            "or re-run `invoke release`: it sees the unfinished release and completes it."
        )


def finish(version: str, branch: str, repository: str | None, no_push: bool, dry_run: bool) -> None:
    """Complete the release HEAD already is (upload what is missing, push): never a new one."""
    tag = f"v{version}"
    step(f"finish: HEAD is the release commit {tag}; completing it instead of cutting a new one")
    dirty = git("status", "--porcelain", "--untracked-files=normal")
    on = run(["git", "symbolic-ref", "--short", "-q", "HEAD"], capture=True).stdout.strip()
    if dirty or on != branch:
        raise Exit(f"To finish {tag}, be on a clean {branch!r} (now {on!r}, dirty: {bool(dirty)}).")
    index = resolve_index(repository)
    missing = [n for n in artifact_names(version) if n not in served_files(index)]
    pending = "origin" in git("remote").split() and not no_push
    if pending:
        refs = remote_refs(f"refs/heads/{branch}", f"refs/tags/{tag}")
        pending = refs.get(f"refs/heads/{branch}") != git("rev-parse", "HEAD") or tag not in str(
            refs
        )
    if dry_run:
        print(f"would upload: {', '.join(missing) or 'nothing'}; would push: {pending}")
        return
    if missing:
        on_disk = all((DIST / n).is_file() for n in artifact_names(version))
        artifacts = [DIST / n for n in artifact_names(version)]
        upload(index, artifacts if on_disk else build_and_test_install(version))
    if pending:
        push(branch, tag, index)
    print(
        f"Release {version} is complete: on {index.url}" + ("" if pending else ", nothing to push")
    )


HELP = {
    "part": "which part to bump: major, minor or patch (default: patch)",
    "dry-run": "print the plan (version, changelog draft, files, index) and change nothing",
    "no-push": "do not push the release commit and tag to origin",
    "skip-checks": "skip the quality gates (the default nox sessions)",
    "allow-empty": "release even when newsfragments/ is empty",
    "branch": "the branch releases are cut from (default: main)",
    "repository": "a ~/.pypirc section naming the index (else TWINE_REPOSITORY_URL)",
}


@task(auto_shortflags=False)
def version(c: Context) -> None:
    """Print the current version and what a major, minor or patch release would give."""
    print(f"current: {current_version()}")
    with ThreadPoolExecutor(len(PARTS)) as pool:  # one bump-my-version process per part
        for part, (new, _) in zip(PARTS, pool.map(bump_plan, PARTS), strict=True):
            print(f"{part + ':':8} {new}")


@task(
    auto_shortflags=False,
    help={
        "draft": "print the section instead of writing CHANGELOG.md",
        "version": "the version to title the section with (default: the next patch)",
    },
)
def changelog(c: Context, draft: bool = False, version: str = "") -> None:
    """Build the CHANGELOG section from newsfragments/ with towncrier, for an explicit version."""
    version = version or bump_plan("patch")[0]
    ok(
        [*PY, "towncrier", "build", f"--version={version}", "--draft" if draft else "--yes"],
        "towncrier",
        "Check newsfragments/ and the [tool.towncrier] config.",
    )


@task(auto_shortflags=False)
def build(c: Context) -> None:
    """Build sdist + wheel into dist/ and check them: the `build` nox session."""
    ok(nox("-s", "build"), "nox -s build", "Fix the reported problem and re-run.")


@task(auto_shortflags=False, help={"repository": HELP["repository"]})
def publish(c: Context, repository: str = "") -> None:
    """Upload the current version's dist/ files to the private index with twine, and verify."""
    artifacts = [DIST / n for n in artifact_names(current_version())]
    if not all(a.is_file() for a in artifacts):
        raise Exit(f"dist/ lacks {', '.join(a.name for a in artifacts)}: run `invoke build` first.")
    upload(resolve_index(repository or None), artifacts)


@task(
    auto_shortflags=False,
    help={
        k: HELP[k]
        for k in (
            "part",
            "dry-run",
            "no-push",
            "skip-checks",
            "allow-empty",
            "branch",
            "repository",
        )
    },
)
def release(
    c: Context,
    part: str = "patch",
    dry_run: bool = False,
    no_push: bool = False,
    skip_checks: bool = False,
    allow_empty: bool = False,
    branch: str = "main",
    repository: str = "",
) -> None:
    """Release to the private index as a transaction: check, gate, bump, build, upload, push."""
    current = current_version()
    if f"v{current}" in git("tag", "--points-at", "HEAD").split():
        finish(current, branch, repository or None, no_push, dry_run)
        return
    step("preflight")
    plan = preflight(part, branch, repository or None, allow_empty)
    push_cmd = f"git push --atomic origin {branch} {plan.tag}"
    if dry_run:
        print(f"version: {plan.current} -> {plan.new} ({part}), tag {plan.tag} on {branch}")
        print(f"index:   {redact(plan.index.url)} (user {plan.index.username}, password ****)")
        print(
            f"gates:   {'skipped (--skip-checks)' if skip_checks else 'nox (the default sessions)'}"
        )
        print("would change:\n" + "".join(f"  {name}\n" for name in plan.files), end="")
        print(f"push:    {push_cmd if plan.has_origin and not no_push else 'none'}")
        print("changelog draft:", flush=True)
        ok([*PY, "towncrier", "build", "--draft", f"--version={plan.new}"], "towncrier --draft", "")
        print("Dry run: nothing changed.")
        return
    if not skip_checks:
        step("gates: nox (the default sessions)")
        ok(nox(), "The quality gates (nox)", "Fix them and re-run; nothing was changed.")
    with transaction(plan.tag) as txn:
        step(f"changelog: towncrier build --version {plan.new}")
        ok(
            [*PY, "towncrier", "build", "--yes", f"--version={plan.new}"],
            "towncrier",
            "Check newsfragments/.",
        )
        step(f"bump: {plan.current} -> {plan.new}")
        ok(
            [*PY, "bumpversion", "bump", part, "--allow-dirty", "--no-commit", "--no-tag"],
            "bump-my-version",
            "",
        )
        if current_version() != plan.new:
            raise Exit(f"bump-my-version wrote {current_version()}, expected {plan.new}.")
        git("add", "--all")  # preflight proved the tree clean: these are the release's changes
        git("commit", "--quiet", "--message", f"Release {plan.new}")
        git("tag", "--annotate", plan.tag, "--message", f"Release {plan.new}")
        artifacts = build_and_test_install(plan.new)
        try:
            upload(plan.index, artifacts)
        except BaseException:
            txn.published = published_any(plan.index, plan.new)
            if txn.published:
                print(
                    f"{plan.tag} is partly on the index: it is kept. Finish it by re-running "
                    "`invoke release`.",
                    file=sys.stderr,
                )
            raise
        txn.published = True
    if plan.has_origin and not no_push:
        push(branch, plan.tag, plan.index)
    print(f"Released {PROJECT} {plan.new} to {plan.index.url}.")

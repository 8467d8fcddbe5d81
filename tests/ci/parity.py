"""Parity between the noxfile and every CI platform: one rule set, platform-neutral.

The noxfile is the single source of truth. ``ci_sessions`` asks nox itself
(``nox --json -l``) which sessions carry the ``ci`` tag and on which Python each
runs. A platform loader (``tests.ci.platforms``) turns a CI file into ``Job``
records; ``check_jobs`` then proves, for one platform:

* every job's work is exactly one command, a single ``nox -s NAME`` or
  ``invoke release --part PART [--skip-checks]`` call (setup lines that only
  install tools are listed in ``SETUP_LINES``);
* the jobs run exactly the ``ci`` sessions, each once, matrix variants expanded;
* a job running a Python-specific session sets up that Python;
* a release job either runs the gates itself (then it sets up every Python) or
  runs after every other job of its pipeline (``--skip-checks``).

Every problem is a string that starts with the file and names the job.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Lines a job may run besides its one command: they install tools, never check anything.
SETUP_LINES = frozenset(
    {
        "python -m pip install 'nox[uv]'",
        "uv sync --locked --no-install-project --no-default-groups --group release",
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium",
        'git checkout -B "$CI_COMMIT_BRANCH" "$CI_COMMIT_SHA"',
        'git remote set-url origin "https://release-bot:${RELEASE_PUSH_TOKEN}'
        '@${CI_SERVER_HOST}/${CI_PROJECT_PATH}.git"',
        ". .venv/bin/activate",
    }
)
#: Shell syntax that makes one line run several commands.
CHAINING = ("&&", "||", ";", "|", "`", "$(", "\n")
RELEASE_PARTS = ("major", "minor", "patch")


@dataclass(frozen=True)
class NoxSession:
    """One session as nox lists it: ``tests-3.12`` has name ``tests`` and python ``3.12``."""

    session: str
    name: str
    python: str | None


@dataclass(frozen=True)
class Job:
    """One CI job (or Jenkins stage) as a loader read it.

    ``commands`` are the job's lines that are not in ``SETUP_LINES``; ``variants``
    are the matrix assignments (one empty mapping without a matrix) and ``expand``
    substitutes a variant into a command or a Python version. ``pythons`` maps a
    variant index to the interpreters the job sets up (``None``: the platform's
    agent provides every Python). ``needs`` lists the jobs that must pass first.
    """

    file: str
    name: str
    commands: tuple[str, ...]
    variants: tuple[Mapping[str, str], ...] = ({},)
    pythons: tuple[tuple[str, ...], ...] | None = None
    needs: tuple[str, ...] = ()
    pattern: str = r"\$\{\{\s*matrix\.(\w+)\s*\}\}"

    def expand(self, text: str, variant: Mapping[str, str]) -> str:
        """Return ``text`` with the variant's matrix variables substituted."""

        def value(match: re.Match[str]) -> str:
            name = next(group for group in match.groups() if group)
            return variant.get(name, match.group(0))

        return re.sub(self.pattern, value, text)

    @property
    def where(self) -> str:
        """The prefix of every problem about this job: file and job name."""
        return f"{self.file}: job {self.name!r}"


@dataclass(frozen=True)
class Call:
    """The parsed single command of a job."""

    tool: str  # "nox" or "invoke"
    session: str = ""
    part: str = ""
    skip_checks: bool = False


@dataclass
class Platform:
    """All jobs of one CI platform (possibly from several files) plus loader problems."""

    name: str
    jobs: list[Job] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    needs_release: bool = True


def ci_sessions(noxfile: Path) -> dict[str, NoxSession]:
    """Return the sessions ``noxfile`` tags ``ci``, by session name, as nox lists them."""
    result = subprocess.run(
        [sys.executable, "-m", "nox", "--json", "-l", "-t", "ci", "-f", str(noxfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"`nox --json -l -t ci -f {noxfile}` failed:\n{result.stderr}")
    listed = json.loads(result.stdout)
    return {
        item["session"]: NoxSession(item["session"], item["name"], item["python"])
        for item in listed
        if "ci" in item.get("tags", [])
    }


def parse_call(job: Job, command: str) -> tuple[Call | None, str]:
    """Parse ``command`` as one nox/invoke call; return (call, "") or (None, problem)."""
    for token in CHAINING:
        if token in command:
            return None, (
                f"{job.where} chains commands with {token!r} in {command!r}; "
                "a job runs one `nox -s NAME` line"
            )
    # A GitHub expression is one word: `${{ inputs.part }}` -> `${{inputs.part}}`.
    command = re.sub(r"\$\{\{(.*?)\}\}", lambda m: "${{" + "".join(m[1].split()) + "}}", command)
    try:
        words = shlex.split(command)
    except ValueError as error:
        return None, f"{job.where}: cannot parse {command!r}: {error}"
    if len(words) == 3 and words[:2] == ["nox", "-s"]:
        return Call("nox", session=words[2]), ""
    if words[:3] == ["invoke", "release", "--part"] and len(words) in (4, 5):
        extra = words[4:]
        if extra in ([], ["--skip-checks"]):
            return Call("invoke", part=words[3], skip_checks=bool(extra)), ""
    return None, (
        f"{job.where} runs {command!r}, which is not a single `nox -s NAME` "
        "(one session) or `invoke release --part PART` call"
    )


def _calls(job: Job, problems: list[str]) -> list[tuple[Call, Mapping[str, str], int]]:
    """Parse the job's one command for every matrix variant; record problems."""
    if len(job.commands) != 1:
        listed = "; ".join(repr(command) for command in job.commands) or "nothing"
        problems.append(
            f"{job.where} runs {len(job.commands)} commands ({listed}); its work must be "
            "exactly one `nox -s NAME` or `invoke release` line"
        )
        return []
    calls = []
    for index, variant in enumerate(job.variants):
        call, problem = parse_call(job, job.expand(job.commands[0], variant))
        if call is None:
            problems.append(problem)
            return []
        calls.append((call, variant, index))
    return calls


def _check_python(job: Job, index: int, session: NoxSession, problems: list[str]) -> None:
    """A Python-specific session needs that interpreter set up by its job."""
    if job.pythons is None or session.python is None:
        return
    available = job.pythons[index]
    if session.python not in available:
        problems.append(
            f"{job.where} runs {session.session} but sets up Python "
            f"{', '.join(available) or '(none)'}, not {session.python}"
        )


def _check_release(
    job: Job, call: Call, all_jobs: Sequence[Job], versions: Iterable[str], problems: list[str]
) -> None:
    """A release either runs the gates (every Python set up) or follows every other job."""
    if call.part not in RELEASE_PARTS and not call.part.startswith("$"):
        problems.append(f"{job.where}: --part {call.part!r} is not one of {RELEASE_PARTS}")
    if call.skip_checks:
        others = {other.name for other in all_jobs if other.file == job.file} - {job.name}
        missing = sorted(others - set(job.needs))
        if missing:
            problems.append(
                f"{job.where} skips the gates (--skip-checks) but does not need the "
                f"jobs that run them: {', '.join(missing)}"
            )
    elif job.pythons is not None:
        lacking = sorted(set(versions) - set(job.pythons[0]))
        if lacking:
            problems.append(
                f"{job.where} runs the gates (no --skip-checks) but does not set up "
                f"Python {', '.join(lacking)} (the noxfile's tests need every version)"
            )


def _missing_problem(platform: Platform, missing: NoxSession, ran: Mapping[str, Job]) -> str:
    """Describe a ci session no job runs, naming the job(s) that run its siblings."""
    siblings = sorted(name for name in ran if name.split("-")[0] == missing.name)
    jobs = sorted({(ran[name].file, ran[name].name) for name in siblings})
    files = sorted({job.file for job in platform.jobs}) or [platform.name]
    marked = f"which the noxfile marks for CI (Python {missing.python})"
    if len(jobs) == 1:
        file, name = jobs[0]
        return (
            f"{file}: job {name!r} runs {', '.join(siblings)} but not {missing.session}, "
            f"{marked}; add {missing.python} to the job's matrix"
        )
    if jobs:
        names = ", ".join(repr(name) for _, name in jobs)
        return (
            f"{jobs[0][0]}: jobs {names} run {', '.join(siblings)} but no job runs "
            f"{missing.session}, {marked}; add a job {missing.session!r}"
        )
    return (
        f"{' + '.join(files)}: no job runs `nox -s {missing.session}`, which the noxfile "
        f"marks for CI; add a job {missing.name!r} for it"
    )


def check_platform(platform: Platform, expected: Mapping[str, NoxSession]) -> list[str]:
    """Return every parity problem of ``platform`` against the noxfile's ci sessions."""
    problems = list(platform.problems)
    versions = sorted({s.python for s in expected.values() if s.python is not None})
    ran: dict[str, Job] = {}
    releases = 0
    for job in platform.jobs:
        for call, _variant, index in _calls(job, problems):
            if call.tool == "invoke":
                releases += 1
                _check_release(job, call, platform.jobs, versions, problems)
                continue
            if call.session in ran:
                problems.append(
                    f"{job.where} runs {call.session}, which job "
                    f"{ran[call.session].name!r} runs already"
                )
                continue
            ran[call.session] = job
            session = expected.get(call.session)
            if session is None:
                problems.append(
                    f"{job.where} runs session {call.session!r}, which the noxfile does not "
                    "tag for CI (`nox -l -t ci` lists those)"
                )
                continue
            _check_python(job, index, session, problems)
    for name in sorted(set(expected) - set(ran)):
        problems.append(_missing_problem(platform, expected[name], ran))
    if platform.needs_release and releases == 0:
        problems.append(f"{platform.name}: no job runs `invoke release --part PART`")
    return problems


def matrix_variants(matrix: Mapping[str, object]) -> tuple[dict[str, str], ...]:
    """Expand a ``{name: value-or-list}`` matrix into every assignment (cartesian product)."""
    names = sorted(matrix)
    values = [
        [str(v) for v in value] if isinstance(value, list) else [str(value)]
        for value in (matrix[name] for name in names)
    ]
    return tuple(dict(zip(names, combo, strict=True)) for combo in itertools.product(*values))

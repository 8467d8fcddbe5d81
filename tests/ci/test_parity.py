"""Every CI platform runs exactly the noxfile's ci sessions, one nox/invoke line per job."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.ci.conftest import PLATFORMS, ROOT, Mutate, load_platform
from tests.ci.parity import Job, NoxSession, check_platform, ci_sessions, parse_call

GITHUB_CI = ".github/workflows/ci.yml"
GITHUB_RELEASE = ".github/workflows/release.yml"
GITLAB = ".gitlab-ci.yml"
JENKINS = "Jenkinsfile"
KIND = {GITHUB_CI: "github", GITHUB_RELEASE: "github", GITLAB: "gitlab", JENKINS: "jenkins"}


@pytest.mark.parametrize("kind", PLATFORMS)
def test_platform_matches_the_noxfile(kind: str, expected: dict[str, NoxSession]) -> None:
    assert check_platform(load_platform(kind, ROOT), expected) == []


def test_ci_sessions_are_what_nox_lists(expected: dict[str, NoxSession]) -> None:
    names = {session.name for session in expected.values()}
    assert {"lint", "typecheck", "security", "tests", "coverage", "build", "ci"} <= names
    assert "changelog" not in names  # not tagged ci
    versions = sorted(s.python for s in expected.values() if s.python)
    assert versions == sorted(f"3.{minor}" for minor in range(10, 14))
    assert expected["tests-3.12"] == NoxSession("tests-3.12", "tests", "3.12")


# (file, old, new, fragments every expected problem contains)
BREAKAGES = [
    pytest.param(
        GITHUB_CI,
        'python: ["3.10", "3.11", "3.12", "3.13"]',
        'python: ["3.10", "3.11", "3.12"]',
        [GITHUB_CI, "job 'tests'", "not tests-3.13"],
        id="github-missing-python",
    ),
    pytest.param(
        GITLAB,
        'PYTHON: ["3.10", "3.11", "3.12", "3.13"]',
        'PYTHON: ["3.10", "3.12", "3.13"]',
        [GITLAB, "job 'tests'", "not tests-3.11"],
        id="gitlab-missing-python",
    ),
    pytest.param(
        JENKINS,
        "sh 'nox -s tests-3.13'",
        "sh 'nox -s tests-3.12'",
        [JENKINS, "job 'tests-3.13' runs tests-3.12, which job 'tests-3.12' runs already"],
        id="jenkins-duplicate-session",
    ),
    pytest.param(
        JENKINS,
        "        stage('tests-3.13') {\n            steps {\n"
        "                sh 'nox -s tests-3.13'\n            }\n        }\n",
        "",
        [JENKINS, "'tests-3.10', 'tests-3.11', 'tests-3.12'", "no job runs tests-3.13"],
        id="jenkins-missing-python",
    ),
    pytest.param(
        GITHUB_CI,
        "- run: nox -s lint",
        "- run: nox -s lint && nox -s build",
        [GITHUB_CI, "job 'lint' chains commands with '&&'"],
        id="github-chained-commands",
    ),
    pytest.param(
        GITHUB_CI,
        "      - run: nox -s security\n",
        "      - run: nox -s security\n      - run: nox -s build\n",
        [GITHUB_CI, "job 'security' runs 2 commands"],
        id="github-two-steps",
    ),
    pytest.param(
        GITHUB_CI,
        "      - run: nox -s typecheck\n",
        "      - run: |\n          nox -s typecheck\n          nox -s build\n",
        [GITHUB_CI, "job 'typecheck' runs 2 commands"],
        id="github-two-lines",
    ),
    pytest.param(
        GITLAB,
        "    - nox -s lint\n",
        "    - nox -s lint\n    - nox -s build\n",
        [GITLAB, "job 'lint' runs 2 commands"],
        id="gitlab-two-commands",
    ),
    pytest.param(
        GITLAB,
        "  before_script:\n    - python -m pip install 'nox[uv]'\n",
        "  before_script:\n    - python -m pip install 'nox[uv]'\n    - nox -s lint\n",
        [GITLAB, "job 'typecheck'", "'nox -s lint' in before_script/after_script"],
        id="gitlab-work-in-before-script",
    ),
    pytest.param(
        JENKINS,
        "sh 'nox -s lint'",
        "sh 'nox -s lint'\n                sh 'nox -s build'",
        [JENKINS, "job 'lint' runs 2 commands"],
        id="jenkins-two-commands",
    ),
    pytest.param(
        JENKINS,
        "stage('security') {\n            steps {",
        "stage('security') {\n            stepz {",
        [JENKINS, "job 'security': unknown directive 'stepz'"],
        id="jenkins-typo-key",
    ),
    pytest.param(
        JENKINS,
        "        CI = 'true'\n",
        "",
        [JENKINS, "does not set CI = 'true'"],
        id="jenkins-no-ci-env",
    ),
    pytest.param(
        JENKINS,
        "    stages {\n",
        "    stages {\n        {\n",
        [JENKINS, "the file ends inside a block"],
        id="jenkins-unbalanced",
    ),
    pytest.param(
        JENKINS,
        "sh 'nox -s ci'",
        "sh 'nox -s ci lint'",
        [JENKINS, "job 'ci' runs 'nox -s ci lint', which is not a single `nox -s NAME`"],
        id="jenkins-two-sessions",
    ),
    pytest.param(
        GITHUB_CI,
        "- run: nox -s build",
        "- run: nox -s changelog",
        [GITHUB_CI, "job 'build' runs session 'changelog', which the noxfile does not tag"],
        id="github-untagged-session",
    ),
    pytest.param(
        GITHUB_CI,
        "          python-version: ${{ matrix.python }}",
        '          python-version: "3.12"',
        [GITHUB_CI, "job 'tests' runs tests-3.10 but sets up Python 3.12, not 3.10"],
        id="github-wrong-interpreter",
    ),
    pytest.param(
        GITHUB_CI,
        "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2",
        "actions/checkout@v4",
        [GITHUB_CI, "job 'lint' uses 'actions/checkout@v4': pin actions to a full"],
        id="github-unpinned-action",
    ),
    pytest.param(
        GITHUB_CI,
        "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683  # v4.2.2\n",
        "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683\n",
        [GITHUB_CI, "job 'lint' uses", "without a `# vX.Y.Z` comment"],
        id="github-pin-without-version",
    ),
    pytest.param(
        GITHUB_CI,
        "permissions:\n  contents: read\n",
        "permissions:\n  contents: write\n",
        [GITHUB_CI, "top-level `permissions` read-only"],
        id="github-write-permissions",
    ),
    pytest.param(
        GITHUB_CI,
        "  lint:\n    name: nox -s lint\n",
        "  lint:\n    name: nox -s lint\n    permissions:\n      packages: write\n",
        [GITHUB_CI, "job 'lint' asks for write permissions"],
        id="github-job-write-permissions",
    ),
    pytest.param(
        GITHUB_CI,
        "          enable-cache: true\n",
        "          enable-cache: false\n",
        [GITHUB_CI, "job 'lint': astral-sh/setup-uv needs `enable-cache: true`"],
        id="github-uv-not-cached",
    ),
    pytest.param(
        GITHUB_CI,
        "          include-hidden-files: true\n",
        "",
        [GITHUB_CI, "job 'tests' does not upload its .coverage.py* data"],
        id="github-coverage-data-not-uploaded",
    ),
    pytest.param(
        GITHUB_CI,
        "    needs: tests\n",
        "",
        [GITHUB_CI, "job 'coverage' does not need the tests job(s) tests"],
        id="github-coverage-without-needs",
    ),
    pytest.param(
        GITHUB_RELEASE,
        "concurrency:\n  group: release\n  cancel-in-progress: false\n",
        "",
        [GITHUB_RELEASE, "job 'release' has no `concurrency` guard"],
        id="github-release-no-concurrency",
    ),
    pytest.param(
        GITHUB_RELEASE,
        "    environment: release\n",
        "",
        [GITHUB_RELEASE, "job 'release' must run in the protected `release` environment"],
        id="github-release-no-environment",
    ),
    pytest.param(
        GITHUB_RELEASE,
        "${{ secrets.TWINE_PASSWORD }}",
        "hunter2",
        [GITHUB_RELEASE, "job 'release': TWINE_PASSWORD must come from `${{ secrets."],
        id="github-release-password-inline",
    ),
    pytest.param(
        GITHUB_RELEASE,
        "options: [patch, minor, major]",
        "options: [patch, minor]",
        [GITHUB_RELEASE, "job 'release': needs `on: workflow_dispatch` with a `part` choice"],
        id="github-release-part-choices",
    ),
    pytest.param(
        GITHUB_RELEASE,
        "            3.10\n",
        "",
        [GITHUB_RELEASE, "job 'release' runs the gates", "does not set up Python 3.10"],
        id="github-release-missing-python",
    ),
    pytest.param(
        GITHUB_RELEASE,
        "- run: invoke release --part ${{ inputs.part }}",
        "- run: invoke release --part huge",
        [GITHUB_RELEASE, "job 'release': --part 'huge' is not one of"],
        id="github-release-bad-part",
    ),
    pytest.param(
        GITHUB_RELEASE,
        "- run: invoke release --part ${{ inputs.part }}",
        "- run: invoke release --part patch --no-push",
        [GITHUB_RELEASE, "job 'release' runs 'invoke release --part patch --no-push'"],
        id="github-release-extra-flag",
    ),
    pytest.param(
        GITLAB,
        "      when: manual\n",
        "",
        [GITLAB, "job 'release': a release job must be `when: manual`"],
        id="gitlab-release-not-manual",
    ),
    pytest.param(
        GITLAB,
        "  resource_group: release\n",
        "",
        [GITLAB, "job 'release' has no resource_group"],
        id="gitlab-release-no-guard",
    ),
    pytest.param(
        GITLAB,
        "  environment:\n    name: release\n",
        "",
        [GITLAB, "job 'release' must run in the `release` environment"],
        id="gitlab-release-no-environment",
    ),
    pytest.param(
        GITLAB,
        "needs: [lint, typecheck, security, ci, build, tests, coverage]",
        "needs: [lint, typecheck, security, ci, build, tests]",
        [GITLAB, "job 'release' skips the gates", "coverage"],
        id="gitlab-release-skips-unfinished-gates",
    ),
    pytest.param(
        GITLAB,
        '    paths: [".coverage.py*"]\n',
        "    paths: [other]\n",
        [GITLAB, "job 'tests' does not keep its .coverage.py* data"],
        id="gitlab-coverage-data-dropped",
    ),
    pytest.param(
        GITLAB,
        "  needs: [tests]\n",
        "",
        [GITLAB, "job 'coverage' does not need the tests job"],
        id="gitlab-coverage-without-needs",
    ),
    pytest.param(
        GITLAB,
        '  UV_CACHE_DIR: "$CI_PROJECT_DIR/.cache/uv"\n',
        "",
        [GITLAB, "cache uv"],
        id="gitlab-uv-not-cached",
    ),
    pytest.param(
        GITLAB,
        "  image: python:${PYTHON}\n",
        "",
        [GITLAB, "job 'tests' runs tests-3.10 but sets up Python 3.13, not 3.10"],
        id="gitlab-wrong-interpreter",
    ),
    pytest.param(
        GITLAB,
        '    - invoke release --part "$RELEASE_PART" --skip-checks\n',
        "    - nox -s changelog\n",
        [GITLAB, "no job runs `invoke release --part PART`"],
        id="gitlab-no-release",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "fragments"), BREAKAGES)
def test_breaking_a_ci_file_names_file_and_job(
    mutate: Mutate,
    expected: dict[str, NoxSession],
    file: str,
    old: str,
    new: str,
    fragments: list[str],
) -> None:
    root = mutate(file, old, new)
    problems = check_platform(load_platform(KIND[file], root), expected)
    assert any(all(fragment in problem for fragment in fragments) for problem in problems), problems


def _noxfile_with_versions(root: Path, versions: list[str]) -> Path:
    path = root / "noxfile.py"
    text = path.read_text(encoding="utf-8")
    declared = 'PYTHON_VERSIONS = ["3.10", "3.11", "3.12", "3.13"]'
    assert declared in text
    path.write_text(text.replace(declared, f"PYTHON_VERSIONS = {versions!r}"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def noxfile_plus_314(tmp_path_factory: pytest.TempPathFactory) -> dict[str, NoxSession]:
    root = tmp_path_factory.mktemp("noxfile-314")
    (root / "noxfile.py").write_text((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    return ci_sessions(_noxfile_with_versions(root, ["3.10", "3.11", "3.12", "3.13", "3.14"]))


@pytest.mark.parametrize(
    ("kind", "fragments"),
    [
        ("github", [GITHUB_CI, "job 'tests'", "not tests-3.14", "add 3.14 to the job's matrix"]),
        ("gitlab", [GITLAB, "job 'tests'", "not tests-3.14"]),
        ("jenkins", [JENKINS, "no job runs tests-3.14", "add a job 'tests-3.14'"]),
    ],
)
def test_new_python_in_the_noxfile_fails_every_platform(
    noxfile_plus_314: dict[str, NoxSession], kind: str, fragments: list[str]
) -> None:
    problems = check_platform(load_platform(kind, ROOT), noxfile_plus_314)
    assert any(all(fragment in problem for fragment in fragments) for problem in problems), problems


def test_dropped_python_in_the_noxfile_fails(tmp_path: Path) -> None:
    (tmp_path / "noxfile.py").write_text((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    sessions = ci_sessions(_noxfile_with_versions(tmp_path, ["3.11", "3.12", "3.13"]))
    for kind in PLATFORMS:
        problems = check_platform(load_platform(kind, ROOT), sessions)
        assert any(
            "runs session 'tests-3.10', which the noxfile does not tag for CI" in problem
            for problem in problems
        ), problems


def test_broken_noxfile_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "noxfile.py").write_text("import nox\nraise SystemExit('boom')\n")
    with pytest.raises(RuntimeError, match=re.escape("nox --json -l -t ci -f")):
        ci_sessions(tmp_path / "noxfile.py")


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("nox -s lint; nox -s build", "chains commands with ';'"),
        ("nox -s lint | tee log", "chains commands with '|'"),
        ("nox -s 'lint", "cannot parse"),
        ("make lint", "is not a single `nox -s NAME`"),
        ("invoke build", "is not a single `nox -s NAME`"),
    ],
)
def test_commands_that_are_not_one_call(command: str, problem: str) -> None:
    job = Job(file="x.yml", name="j", commands=(command,))
    call, message = parse_call(job, command)
    assert call is None
    assert message.startswith("x.yml: job 'j'")
    assert problem in message


def test_release_call_is_parsed() -> None:
    job = Job(file="x.yml", name="j", commands=())
    call, message = parse_call(job, "invoke release --part ${{ inputs.part }} --skip-checks")
    assert message == ""
    assert call is not None
    assert (call.tool, call.part, call.skip_checks) == ("invoke", "${{inputs.part}}", True)

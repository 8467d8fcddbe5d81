"""Time the release round trip, without the quality gates, and print a table per step.

``python -m benchmarks.release_roundtrip [--runs N]`` starts a real pypiserver, copies this
project into a temporary git repository (origin: a local bare repo), and runs
``invoke release --part patch --skip-checks`` N times in fresh clones: preflight, changelog,
bump, ``nox -s build`` (incl. ``twine check --strict``), test install, upload, push. Each run
then installs the release from the index into a fresh venv with pip. The first run pays for
creating the build session's venv ("cold"); the others reuse it, as a developer's
``.nox/`` would. The goal is <= 15 s per warm round trip.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from tests.release.conftest import make_project, make_template, start_index
from tests.release.test_release import pip_install_from_index


def main() -> None:
    """Parse ``--runs``, run the releases, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="releases to time (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="release-bench-") as tmp:
        root = Path(tmp)
        index = start_index(root / "index")
        try:
            template = make_template(_mkdir(root / "template"))
            envdir = _mkdir(root / "nox-envs")
            rows: list[dict[str, float]] = []
            for number in range(args.runs):
                where = _mkdir(root / f"run{number}")
                project = make_project(where, template, index, envdir)
                project.add_fragment(f"{800 + number}.feature.md", "A benchmarked change.")
                if number:  # each run releases 0.1.1 from a fresh clone: empty the index
                    for old in index.packages.iterdir():
                        old.unlink()
                steps: dict[str, float] = {}
                start = last = time.perf_counter()
                proc = project.invoke("release", "--part", "patch", "--skip-checks")
                if proc.stdout is None:
                    raise SystemExit("invoke's output is not piped")
                current = "start"
                for line in proc.stdout:
                    if line.startswith("==> "):
                        now = time.perf_counter()
                        steps[current] = now - last
                        current, last = line[4:].split(":")[0].strip(), now
                if proc.wait() != 0:
                    raise SystemExit(f"run {number}: the release failed")
                now = time.perf_counter()
                steps[current] = now - last
                steps["release total"] = now - start
                install_start = time.perf_counter()
                pip_install_from_index(index, "0.1.1", where)
                steps["pip install from index"] = time.perf_counter() - install_start
                steps["round trip"] = time.perf_counter() - start
                rows.append(steps)
        finally:
            index.stop()
    names = list(rows[0])
    labels = ["cold" if i == 0 else f"warm {i}" for i in range(len(rows))]
    print(f"{'step':<24}" + "".join(f"{label:>10}" for label in labels))
    print("-" * (24 + 10 * len(rows)))
    for name in names:
        print(f"{name:<24}" + "".join(f"{row.get(name, 0.0):>9.2f}s" for row in rows))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    main()

"""How long `noiseveil --help` takes, in fresh processes: this checkout, and a baseline revision.

    python scripts/benchmark_cli_startup.py --baseline e94ec07 --repeats 5

Each measurement is one `python -m noiseveil.app.cli ARGS` process, timed from spawn to exit
(the wall time a user waits); the checkout's code and the baseline's (its `noiseveil/` as
`git archive` gives it, in a temporary folder) are put first on PYTHONPATH and run in turn, so
a busy machine slows both alike. The best of the repeats is the figure (the least disturbed
run); the median is kept beside it. `python -c pass` is measured too: the floor no import
can go under. Writes results/benchmark/cli-startup.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from noiseveil.app.provenance import REPO_ROOT, RESULTS_DIR, provenance, write_result


def timed(argv: list[str], tree: Path) -> float:
    """Seconds of one run of ``argv`` on the noiseveil/ in ``tree`` (run there: ``-m`` puts the
    working folder first on sys.path, before PYTHONPATH and the installed package)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(argv, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def checkout_of(revision: str, into: Path) -> str:
    """``revision``'s noiseveil/ (without the weights, which --help never reads) under ``into``;
    returns the full commit hash."""
    commit = subprocess.run(
        ["git", "rev-parse", revision], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit, "noiseveil", ":(exclude)noiseveil/weights"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def figures(seconds: list[float]) -> dict:
    return {
        "best_s": round(min(seconds), 3),
        "median_s": round(statistics.median(seconds), 3),
        "runs_s": [round(s, 3) for s in seconds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", help="a git revision to measure against (default: none)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each command")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "benchmark" / "cli-startup.json")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    commands = {"noiseveil --help": [sys.executable, "-m", "noiseveil.app.cli", "--help"]}
    floor = [sys.executable, "-c", "pass"]
    which = [sys.executable, "-c", "import noiseveil, sys; sys.exit(noiseveil.__file__ != sys.argv[1])"]
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        trees = {"checkout": REPO_ROOT}
        baseline_commit = None
        if args.baseline:
            baseline_commit = checkout_of(args.baseline, Path(tmp))
            trees["baseline"] = Path(tmp)
        for path in trees.values():  # each tree's code is what its runs import, not another's
            subprocess.run([*which, str(path / "noiseveil" / "__init__.py")], cwd=path, check=True)
        runs: dict[str, dict[str, list[float]]] = {t: {c: [] for c in commands} for t in trees}
        python_floor = []
        for _ in range(args.repeats):
            python_floor.append(timed(floor, REPO_ROOT))
            for tree, path in trees.items():  # interleaved: the same load on each
                for name, argv in commands.items():
                    runs[tree][name].append(timed(argv, path))
    result = {
        **provenance([], []),
        "baseline_commit": baseline_commit,
        "repeats": args.repeats,
        "python -c pass": figures(python_floor),
        **{tree: {name: figures(s) for name, s in by_command.items()} for tree, by_command in runs.items()},
    }
    write_result(args.out, result)
    for tree in trees:
        for name in commands:
            f = result[tree][name]
            print(f"{tree:9s} {name}: best {f['best_s']:.2f} s, median {f['median_s']:.2f} s")
    print(f"python -c pass: best {result['python -c pass']['best_s']:.2f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

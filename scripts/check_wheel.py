"""Build the wheel and use it as a user would: a clean virtual environment outside the checkout.

    python scripts/check_wheel.py

1. ``python -m build --wheel`` (an isolated build, as on a fresh machine) into a temporary folder;
   its size and what it holds (the shipped zoo's weights are package data).
2. A new venv (no system site packages) in a temporary folder; ``pip install torch==2.13.0
   WHEEL pytest``: only what the wheel declares, nothing from the checkout.
3. From a working folder outside the checkout, with ``HOME``/``XDG_DATA_HOME`` of its own:
   - ``noiseveil demo`` with no data: it must fail in one line naming ``$NOISEVEIL_DATA`` and the
     per-user data folder;
   - the data bundle linked into the per-user data folder, then ``noiseveil demo``: every shipped
     model, its grid pictures;
   - ``pytest`` on a copy of ``tests/test_ric_lossless.py`` (and the conftest), importing the
     installed package: the shipped lossless RIC models' round trips, in fresh processes too.
Writes results/wheel/check.json (the wheel's size, each step's exit code and seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from noiseveil.app.provenance import REPO_ROOT, RESULTS_DIR, provenance, write_result
from noiseveil.data.bundle import data_dir

WHEEL_LIMIT_BYTES = 50 * 1024 * 1024  # the bound for weights as package data


def run(step: str, argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> dict:
    """One step: its exit code, seconds and the last lines it printed (the whole log in ``log``)."""
    print(f"check_wheel: {step} ...", flush=True)
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = round(time.perf_counter() - start, 1)
    tail = log.read_text().strip().splitlines()[-3:]
    print(f"check_wheel: {step}: exit {code} in {seconds} s", flush=True)
    return {"argv": argv, "exit_code": code, "seconds": seconds, "last_lines": tail}


def wheel_contents(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        weights = [i for i in archive.infolist() if i.filename.startswith("noiseveil/weights/")]
    return {
        "file": wheel.name,
        "bytes": wheel.stat().st_size,
        "files": len(names),
        "weights_files": len(weights),
        "weights_bytes_uncompressed": sum(i.file_size for i in weights),
        "under_limit": wheel.stat().st_size < WHEEL_LIMIT_BYTES,
        "has_tests_or_results": any(n.startswith(("tests/", "results/")) for n in names),
    }


def install_steps(tmp_path: Path, env: dict[str, str]) -> tuple[dict[str, dict], Path | None, Path]:
    """Build the wheel (isolated, as on a fresh machine) and install it into a new venv."""
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    build = [sys.executable, "-m", "build", "--wheel", "-o", str(dist), str(REPO_ROOT)]
    steps = {"build": run("build", build, tmp_path, env, tmp_path / "build.log")}
    wheels = sorted(dist.glob("noiseveil-*.whl"))
    if not wheels:
        return steps, None, venv
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
    install = [*pip, "torch==2.13.0", str(wheels[0]), "pytest"]
    steps["install"] = run("pip install", install, tmp_path, env, tmp_path / "install.log")
    return steps, wheels[0], venv


def user_steps(tmp_path: Path, venv: Path, env: dict[str, str], bundle: Path) -> dict[str, dict]:
    """The demo without data, with the bundle in the per-user folder, and the RIC tests."""
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    env = {
        **env,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data-home"),
        "PATH": f"{venv / 'bin'}:{env['PATH']}",
    }
    demo = ["noiseveil", "demo"]
    steps = {"demo_without_data": run("demo without data", demo, work, env, tmp_path / "nodata.log")}
    user_data = home / "data-home" / "noiseveil" / "data"
    user_data.parent.mkdir(parents=True)
    user_data.symlink_to(bundle.resolve(), target_is_directory=True)
    steps["demo"] = run("demo", demo, work, env, tmp_path / "demo.log")
    steps["demo"]["grids"] = sorted(p.name for p in work.glob("out/demo/*/grid-*.png"))
    (work / "tests").mkdir()
    for name in ("conftest.py", "test_ric_lossless.py"):
        shutil.copy(REPO_ROOT / "tests" / name, work / "tests" / name)
    python = str(venv / "bin" / "python")
    pytest = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]
    tests = run("pytest test_ric_lossless.py", pytest, work, env, tmp_path / "pytest.log")
    steps["ric_round_trip_tests"] = tests
    where = [python, "-c", "import noiseveil; print(noiseveil.__file__)"]
    imported = subprocess.run(where, cwd=work, env=env, capture_output=True, text=True).stdout.strip()
    tests["imported"] = imported.replace(str(tmp_path), "<tmp>")
    return steps


def passed(wheel: dict, steps: dict[str, dict]) -> bool:
    no_data = steps.get("demo_without_data", {})
    return (
        wheel["under_limit"]
        and all(steps[s]["exit_code"] == 0 for s in ("build", "install", "demo", "ric_round_trip_tests"))
        and no_data["exit_code"] != 0
        and "NOISEVEIL_DATA" in " ".join(no_data["last_lines"])
        and "site-packages" in steps["ric_round_trip_tests"]["imported"]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "wheel" / "check.json")
    args = parser.parse_args()
    bundle = data_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOISEVEIL_", "PYTHON"))}
    with tempfile.TemporaryDirectory(prefix="noiseveil-wheel-") as tmp:
        steps, wheel, venv = install_steps(Path(tmp), env)
        if wheel is None or steps["install"]["exit_code"]:
            print(f"check_wheel: building or installing failed: {steps}", file=sys.stderr)
            return 1
        contents = wheel_contents(wheel)
        steps |= user_steps(Path(tmp), venv, env, bundle)
        steps = json.loads(json.dumps(steps).replace(tmp, "<tmp>"))  # the folder is gone after this
    ok = passed(contents, steps)
    result = {**provenance([str(bundle)], []), "wheel": contents, "steps": steps, "passed": ok}
    write_result(args.out, result)
    print(f"check_wheel: wheel {contents['bytes'] / 2**20:.1f} MiB; {'passed' if ok else 'FAILED'}")
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

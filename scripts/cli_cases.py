"""Run every CLI case of issue "One scheme interface..." in a fresh process and record what it
prints now: exit status, the last lines of output, and for long commands the seconds until
their first line of output.

    python scripts/cli_cases.py          # writes results/cli/cli-cases.json

Each case runs in a scratch folder with its own key and ciphertexts (made through the CLI).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.data import load_dataset

CLI = [sys.executable, "-m", "noiseveil.app.cli"]


def run(argv: list[str], cwd: Path) -> dict:
    proc = subprocess.run([*CLI, *argv], capture_output=True, text=True, cwd=cwd)
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    return {"argv": ["noiseveil", *argv], "exit": proc.returncode, "output": lines[-6:]}


def first_line(argv: list[str], cwd: Path) -> dict:
    """Seconds until the command prints anything (it is stopped then)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*CLI, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd
    )
    try:
        line = proc.stdout.readline().strip()
        seconds = time.perf_counter() - start
    finally:
        proc.kill()
        proc.wait()
    return {"argv": ["noiseveil", *argv], "first_output": line, "seconds_to_first_output": round(seconds, 2)}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="noiseveil-cli-cases-"))
    cifar = load_dataset("cifar10")
    (work / "plain").mkdir()
    for i in range(8):
        Image.fromarray(cifar.x_test[i]).save(work / "plain" / f"{i}.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(work / "small.png")
    setup = [
        run(["keygen", "etc.key", "--model", "etc-cifar10-convmixer", "--demo"], work),
        run(["keygen", "my.key"], work),
        run(["encrypt", "plain", "-o", "C", "-k", "etc.key", "-m", "etc-cifar10-convmixer", "--quiet"], work),
    ]
    cases = {
        "classify EtC ciphertexts with -m their cloud model": run(
            ["classify", "C", "-m", "etc-cifar10-convmixer", "--quiet"], work
        ),
        "classify EtC ciphertexts without -m": run(["classify", "C", "--quiet"], work),
        "evaluate an EtC model": run(["evaluate", "-m", "etc-cifar10-convmixer", "-n", "50"], work),
        "models": run(["models"], work),
        "NAE steps on EtC": run(
            [
                "encrypt",
                "plain",
                "-o",
                "o1",
                "-k",
                "etc.key",
                "-m",
                "etc-cifar10-convmixer",
                "--nae-steps",
                "5",
            ],
            work,
        ),
        "--batch-size 0": run(["encrypt", "plain", "-o", "o2", "-k", "my.key", "--batch-size", "0"], work),
        "--batch-size -1": run(["decrypt", "C", "-o", "o3", "-k", "etc.key", "--batch-size", "-1"], work),
        "evaluate -n 0": run(["evaluate", "-n", "0"], work),
        "evaluate -n -5": run(["evaluate", "-n", "-5"], work),
        "--classifier my.key": run(["classify", "C", "--classifier", "my.key"], work),
        "a classifier id where a scheme model is needed": run(
            ["encrypt", "plain", "-o", "o4", "-k", "my.key", "-m", "mnist-cnn"], work
        ),
        "an image of the wrong size for ric-lfw": run(
            ["encrypt", "small.png", "-o", "o5", "-k", "my.key", "-m", "ric-lfw"], work
        ),
        "a classifier id for keygen": run(["keygen", "x.key", "--model", "cifar10-resnet"], work),
        "encrypt with a keyed model and no -k": run(["encrypt", "plain", "-o", "o6", "--quiet"], work),
        "decrypt without -k": run(["decrypt", "C", "-o", "o7", "--quiet"], work),
        "--cloud for a scheme without a protocol": run(["train", "ric-cifar10", "--cloud", "http://x"], work),
        "--stages for report etc": run(["report", "etc", "--stages", "x", "--out", "etc2"], work),
    }
    waits = {
        "report security": first_line(["report", "security", "--models", "ric-mnist", "--out", "sec"], work),
        "report etc": first_line(["report", "etc", "--out", "etc"], work),
        "report avp": first_line(["report", "avp", "--out", "avp"], work),
        "demo": first_line(["demo", "--out", "demo"], work),
        "evaluate": first_line(["evaluate", "-n", "50"], work),
    }
    written = sorted(str(p.relative_to(work)) for p in (work / "results").rglob("*.json"))
    result = {
        **provenance([cifar.source_id], ["etc-cifar10-convmixer", "ric-cifar10", "ric-lfw"]),
        "setup": setup,
        "cases": cases,
        "first_output": waits,
        "evaluate_wrote_into_the_working_folder": written,
    }
    write_result(RESULTS_DIR / "cli" / "cli-cases.json", result)
    for name, case in {**cases, **waits}.items():
        print(f"{name}: {case}")


if __name__ == "__main__":
    main()

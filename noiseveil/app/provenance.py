"""Provenance for every number we publish: the command, git commit, date, data and model ids."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "results"


def git_commit() -> str:
    """HEAD's hash, suffixed ``-dirty`` if the work tree has uncommitted changes to tracked files
    outside ``results/`` (results are outputs: one benchmark's fresh JSON does not change the
    code the next one runs)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(data_ids: list[str], model_ids: list[str]) -> dict[str, Any]:
    program = Path(sys.argv[0])
    if program.suffix == ".py":  # a script beside the library: say how to run it from the repo root
        try:
            program_words = ["python", str(program.resolve().relative_to(REPO_ROOT))]
        except ValueError:
            program_words = ["python", str(program)]
    else:
        program_words = [program.name]
    argv = [*program_words, *sys.argv[1:]]
    return {
        "command": shlex.join(argv),
        "git_commit": git_commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data": data_ids,
        "models": model_ids,
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }


def write_result(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)
    return path

"""Provenance for every number we publish: the command, git commit, date, data and model ids."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from noiseveil.exceptions import NoiseveilError
from noiseveil.locations import source_checkout

# In a checkout, results are the repository's; an installed wheel writes them where it runs.
REPO_ROOT = source_checkout()
RESULTS_DIR = (REPO_ROOT or Path.cwd()) / "results"


_OUTPUTS = (":(exclude)results", ":(exclude)checkpoints")


def git_commit() -> str:
    """HEAD's hash, suffixed ``-dirty`` if the work tree has uncommitted changes to tracked files
    outside ``results/`` and ``checkpoints/`` (outputs: one benchmark's fresh JSON, or a long
    training's own committed checkpoint, does not change the code the next run runs). An
    installed wheel has no work tree: its release, ``noiseveil==V``."""
    if REPO_ROOT is None:
        return f"noiseveil=={version('noiseveil')}"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *_OUTPUTS],
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
            program_words = ["python", str(program.resolve().relative_to(REPO_ROOT or Path.cwd()))]
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


class ReportError(NoiseveilError):
    """A report asked for what it cannot do (an unknown stage, nothing saved to keep)."""


def stages_to_run(
    saved_path: Path, only: Sequence[str] | None, known: Sequence[str]
) -> tuple[list[str], dict[str, Any], dict[str, float]]:
    """The stages a report runs, the saved result it keeps the others from, and their seconds.

    A full run (``only`` empty) keeps nothing. A run of ``only`` some stages keeps the saved
    result, whose stages each carry the provenance of the run that measured them
    (``stage_provenance``, which the caller updates for the stages it runs)."""
    wanted = list(only or known)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ReportError(f"unknown report stage {', '.join(unknown)}; stages: {', '.join(known)}")
    if not only:
        return wanted, {}, {}
    if not saved_path.exists():
        raise ReportError(f"{saved_path}: no saved report to keep the other stages from; run all stages")
    saved = json.loads(saved_path.read_text())
    saved["stage_provenance"] = dict(saved.get("stage_provenance", {}))
    return wanted, saved, dict(saved.get("seconds", {}))

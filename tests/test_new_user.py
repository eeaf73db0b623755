"""What a new user hit in the CLI (issue 27), each as the command that showed it, in fresh
processes: an output folder inside the input read back as input, ``-o DIR/`` for one file,
files that are not images left out without a word, a missing ``-k`` handled two ways,
progress frames in a redirected log, a refusal to overwrite that did not name the way out.

EtC with its model's PUBLIC demo key: exact and fast, so the tests are about the commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from noiseveil.app.exit_codes import EXIT_OK
from noiseveil.zoo import load_scheme

MODEL = "etc-cifar10-convmixer"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "demo.key"
    load_scheme(MODEL).demo_key().save(path)
    return path


def photos(folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    made = {}
    for i, name in enumerate(names):
        pixels = np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / name)
        made[name] = pixels
    return made


def nv(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return run_cli([str(a) for a in args], cwd=cwd, timeout=300)


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return proc.stderr.strip().splitlines()


def test_progress_in_a_redirected_log_is_plain_lines(tmp_path, key) -> None:
    """Without --quiet and with stderr not a terminal: plain progress lines, no tqdm frames."""
    photos(tmp_path / "photos", ["a.png", "sub/b.png"])
    argv = [sys.executable, "-m", "noiseveil.app.cli", "encrypt", "photos", "-o", "cipher", "-k", str(key)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*argv, "-m", MODEL], cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert b"\r" not in proc.stderr  # bytes: text mode would read a carriage return as a newline
    lines = proc.stderr.decode().splitlines()
    assert lines[0].startswith("encrypt: 2/2 img (100%), ") and lines[0].endswith(" s"), lines
    assert lines[1].startswith("encrypt: 2 of 2 files done, 0 failed"), lines

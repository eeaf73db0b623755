"""Shared fixtures: a tiny, untrained, reproducible RIC scheme and a fresh key.

Everything here is deliberately small (8-channel networks, 3 NAE steps) so that the suite
runs in seconds on a shared 2-core machine and never trains anything.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from noiseveil.classifiers import ResNet
from noiseveil.classifiers.architectures import freeze
from noiseveil.crypto.keys import SecretKey
from noiseveil.schemes.nae import NAEConfig
from noiseveil.schemes.ric import RIC, RICConfig, RICScheme

TINY_SHAPE = (28, 28, 1)  # (H, W, C)
# Compute threads a test's fresh `noiseveil` process may use: the cores shared among the
# pytest-xdist workers. Two workers each starting a 2-thread process put four spinning OpenMP
# threads on two cores, and torch then burns about three times the CPU of the work itself (an
# AVP encryption of 4 faces: 84 s of CPU alone, 280 s beside another 2-thread process): the CI
# run that timed out. A test that means another thread count asks for it (OTHER_THREADS).
WORKER_THREADS = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
OTHER_THREADS = 2 if WORKER_THREADS == 1 else 1


def make_tiny_ric(seed: int = 0) -> RICScheme:
    """The ``tiny_ric`` recipe; also imported by subprocess scripts, so keep it self-contained."""
    torch.manual_seed(seed)
    model = RIC(RICConfig(channels=1, width=8, feature_channels=8))
    classifier = freeze(ResNet(in_channels=1, num_classes=10, blocks=(1,), widths=(8,)))
    return RICScheme(
        model=model,
        classifier=classifier,
        model_id="test-ric",
        image_shape=TINY_SHAPE,
        classifier_id="test-cls",
        nae=NAEConfig(steps=3),
    )


@pytest.fixture(autouse=True, scope="session")
def _own_user_zoo(tmp_path_factory: pytest.TempPathFactory):
    """The user's zoo (``noiseveil model add``) in a folder of the test run, for this process and
    the CLI processes it starts: no test reads or writes the real per-user folder."""
    previous = os.environ.get("NOISEVEIL_WEIGHTS")
    os.environ["NOISEVEIL_WEIGHTS"] = str(tmp_path_factory.mktemp("user-zoo"))
    yield
    if previous is None:
        os.environ.pop("NOISEVEIL_WEIGHTS", None)
    else:
        os.environ["NOISEVEIL_WEIGHTS"] = previous


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Be gentle with the shared machine: one intra-op thread unless a test asks for more."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_ric() -> RICScheme:
    return make_tiny_ric()


@pytest.fixture
def key() -> SecretKey:
    return SecretKey.generate()


@pytest.fixture
def images() -> torch.Tensor:
    """16 reproducible random grey 28x28 images in [0, 1], on the 8-bit grid like real files."""
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (16, 1, 28, 28), generator=g).float() / 255.0


def run_cli(
    args: list[str],
    threads: int = WORKER_THREADS,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout=None,
) -> subprocess.CompletedProcess:
    """``noiseveil ARGS`` in a fresh process with ``threads`` compute threads, as a user runs it."""
    limits = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.run(
        [sys.executable, "-m", "noiseveil.app.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **limits, **(env or {})},
        cwd=cwd,
        timeout=timeout,
    )


def digests(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root``, by its path relative to ``root``."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }

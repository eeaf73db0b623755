"""Where the shipped weights live, and reading one only once its SHA-256 is the recorded one.

Two kinds of networks ship: the models the registry lists (:mod:`noiseveil.zoo`) and the fixed
networks of the metrics (:mod:`noiseveil.perceptual`). Both are checked the same way here, so
that the metrics load their weights without importing the registry (which depends on the
models, never the reverse).
"""

from __future__ import annotations

import os
from pathlib import Path

from noiseveil.checksums import sha256_file
from noiseveil.exceptions import NoiseveilError

# The shipped weights inside the package (read-only to users; `noiseveil train` writes them in a
# checkout). NOISEVEIL_SHIPPED_WEIGHTS points them at another folder with a manifest.json (a
# decrypting machine that holds only what decryption needs).
WEIGHTS_DIR = Path(os.environ.get("NOISEVEIL_SHIPPED_WEIGHTS") or Path(__file__).resolve().parent / "weights")


class WeightsError(NoiseveilError):
    """A weights file missing, or not the one its manifest records (one-line message)."""


def verified_path(path: Path, sha256: str, error: type[WeightsError] = WeightsError) -> Path:
    """``path``, after checking that it exists and has the recorded ``sha256``; else ``error``."""
    if not path.exists():
        raise error(f"{path}: weights file missing")
    if sha256_file(path) != sha256:
        raise error(f"{path}: checksum mismatch, the weights file is corrupt or was modified")
    return path

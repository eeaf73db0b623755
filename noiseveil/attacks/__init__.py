"""Attacks on the schemes, one small class each with one call shape (see :mod:`.base`).

Every attack is built from its threat model's knowledge, optionally trained with ``fit()``,
and called as ``attack(ciphertexts, labels) -> uint8 reconstructions``; :func:`score` measures
the reconstructions against the plaintexts.
"""

from __future__ import annotations

import numpy as np

from noiseveil.attacks.base import Attack, pixels_of
from noiseveil.attacks.baseline import LabelOnlyBaseline
from noiseveil.attacks.bruteforce import KEY_SPACE_BITS, BruteForceAttack, flip_bit
from noiseveil.attacks.cloud import CloudAttack
from noiseveil.attacks.feature import FeatureReconstructionAttack
from noiseveil.attacks.inverse import InverseNetworkAttack, ITNAttack, KnownPlaintextAttack
from noiseveil.metrics import psnr, ssim


def score(reconstructions: np.ndarray, plaintexts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image SSIM and PSNR of reconstructions against the plaintexts (uint8, same shape)."""
    if reconstructions.shape != plaintexts.shape:
        raise ValueError(f"reconstructions {reconstructions.shape} vs plaintexts {plaintexts.shape}")
    return {"ssim": ssim(reconstructions, plaintexts), "psnr_db": psnr(reconstructions, plaintexts)}


def beating_baseline(results: dict[str, dict], baseline: str = "label-only") -> list[str]:
    """Attacks whose mean SSIM or mean PSNR beats the label-only baseline's (report summaries)."""
    base = results[baseline]
    return [
        name
        for name, r in results.items()
        if name not in (baseline, "ciphertext itself")
        and (r["ssim"]["mean"] > base["ssim"]["mean"] or r["psnr_db"]["mean"] > base["psnr_db"]["mean"])
    ]


__all__ = [
    "beating_baseline",
    "KEY_SPACE_BITS",
    "Attack",
    "BruteForceAttack",
    "CloudAttack",
    "flip_bit",
    "FeatureReconstructionAttack",
    "ITNAttack",
    "InverseNetworkAttack",
    "KnownPlaintextAttack",
    "LabelOnlyBaseline",
    "pixels_of",
    "score",
]

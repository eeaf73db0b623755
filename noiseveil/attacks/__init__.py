"""Attacks on the schemes, one small class each with one call shape (see :mod:`.base`).

Every attack is built from its threat model's knowledge, optionally trained with ``fit()``,
and called as ``attack(ciphertexts, labels) -> uint8 reconstructions``; :func:`score` measures
the reconstructions against the plaintexts.
"""

from __future__ import annotations

import numpy as np

from noiseveil.attacks.base import Attack, pixels_of
from noiseveil.attacks.baseline import LabelOnlyBaseline
from noiseveil.attacks.bruteforce import BruteForceAttack
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


def same_label_partners(labels: np.ndarray) -> np.ndarray:
    """For each image, another image with the same label (its class's next member, cyclically);
    -1 for an image alone in its class."""
    partners = np.full(len(labels), -1)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) > 1:
            partners[members] = np.roll(members, -1)
    return partners


def same_label_control(
    reconstructions: np.ndarray, plaintexts: np.ndarray, labels: np.ndarray
) -> dict[str, object]:
    """How much closer each reconstruction is to its own plaintext than to another plaintext of
    the same label: the information about *this* image beyond its label.

    Beating the class-mean baseline is not enough: a generator of typical images of the domain
    can do that (a perceptual distance in particular favours texture over a flat mean) without
    reading anything from the ciphertext. Paired per image, so the standard error is honest.
    """
    partners = same_label_partners(np.asarray(labels))
    have = partners >= 0
    out: dict[str, object] = {"images": int(have.sum())}
    if not have.any():  # no two test images share a label: nothing to compare
        return out
    own = score(reconstructions[have], plaintexts[have])
    other = score(reconstructions[have], plaintexts[partners[have]])
    for metric in ("ssim", "psnr_db"):
        gain = own[metric] - other[metric]
        out[metric] = {
            "own": float(own[metric].mean()),
            "other_same_label": float(other[metric].mean()),
            "gain": float(gain.mean()),
            "gain_stderr": float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0,
        }
    return out


def image_specific(results: dict[str, dict], z: float = 3.0) -> list[str]:
    """Attacks whose SSIM or PSNR gain over a same-label image exceeds ``z`` standard errors."""
    return [
        name
        for name, r in results.items()
        if "ssim" in r.get("control", {})
        and name != "ciphertext itself"
        and any(r["control"][m]["gain"] > z * r["control"][m]["gain_stderr"] > 0 for m in ("ssim", "psnr_db"))
    ]


__all__ = [
    "beating_baseline",
    "Attack",
    "BruteForceAttack",
    "CloudAttack",
    "image_specific",
    "FeatureReconstructionAttack",
    "ITNAttack",
    "InverseNetworkAttack",
    "KnownPlaintextAttack",
    "LabelOnlyBaseline",
    "pixels_of",
    "same_label_control",
    "same_label_partners",
    "score",
]

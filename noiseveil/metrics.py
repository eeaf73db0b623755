"""Image-quality and accuracy metrics, all on 8-bit images (what a user actually gets back)."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

PSNR_CAP_DB = 100.0  # identical images: report a finite cap instead of infinity


def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB between uint8 batches (N, H, W, C)."""
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = err.reshape(len(a), -1).mean(1)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(255.0**2 / mse)
    return np.minimum(out, PSNR_CAP_DB)


def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-image SSIM (scikit-image, Gaussian-weighted as in Wang et al. 2004) for uint8 batches."""
    win = 7 if min(a.shape[1:3]) >= 7 else 3
    return np.array(
        [
            structural_similarity(
                x,
                y,
                channel_axis=-1,
                data_range=255,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                win_size=win,
            )
            for x, y in zip(a, b, strict=True)
        ]
    )


def accuracy_drop_proportion(acc_plain: float, acc_encrypted: float) -> float:
    """ADP = (ACC_p − ACC_e) / ACC_p × 100 % (RIC eq. 14)."""
    return 100.0 * (acc_plain - acc_encrypted) / acc_plain if acc_plain > 0 else 0.0


def describe(values) -> dict[str, float]:
    """Mean, min, median, max and standard deviation of per-image values (as reported in results/)."""
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "min": float(v.min()),
        "median": float(np.median(v)),
        "max": float(v.max()),
        "std": float(v.std()),
    }

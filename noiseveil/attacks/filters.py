"""What simple processing of a ciphertext shows an observer (RIC's privacy checks).

A cloud, or anyone holding a ciphertext, can stretch its contrast, low-pass it or map its local
contrast, and look. Each check measures how much the processed ciphertext resembles its own
plaintext against how much it resembles another image's (chance): a leak is a gap between the
two. Nothing here needs a key or a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, uniform_filter

from noiseveil.metrics import describe, ssim


def _stretch(x: np.ndarray) -> np.ndarray:
    """Per-image, per-channel 1-99 % percentile stretch to uint8."""
    lo = np.percentile(x, 1, axis=(1, 2), keepdims=True)
    hi = np.percentile(x, 99, axis=(1, 2), keepdims=True)
    return (np.clip((x - lo) / np.maximum(hi - lo, 1e-9), 0, 1) * 255).round().astype(np.uint8)


def _local_std(x: np.ndarray) -> np.ndarray:
    mean = uniform_filter(x, size=(1, 5, 5, 1))
    return np.sqrt(np.maximum(uniform_filter(x * x, size=(1, 5, 5, 1)) - mean**2, 0))


LOWPASS = "low-pass (Gaussian σ 1.5) + stretch"
PROCESSING = {
    "contrast stretch": lambda c: _stretch(c),
    LOWPASS: lambda c: _stretch(gaussian_filter(c, sigma=(0, 1.5, 1.5, 0))),
    "local contrast (5x5 std) + stretch": lambda c: _stretch(_local_std(c)),
}


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-12)


def privacy_checks(
    cipher: np.ndarray, plain: np.ndarray, other: np.ndarray | None = None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """SSIM and |correlation| of each processed ciphertext with its own plaintext, and with
    another image's plaintext (chance; default: the batch's next image): a leak is a gap
    between the two."""
    other = np.roll(plain, 1, axis=0) if other is None else other
    c = cipher.astype(np.float64)
    out, shown = {}, {}
    for name, process in PROCESSING.items():
        seen = process(c)
        shown[name] = seen
        out[name] = {
            "ssim": describe(ssim(seen, plain)),
            "ssim_chance": describe(ssim(seen, other)),
            "abs_correlation": describe(np.abs(_correlation(seen.astype(np.float64), plain))),
            "abs_correlation_chance": describe(np.abs(_correlation(seen.astype(np.float64), other))),
        }
    return out, shown


def privacy_checks_each(cipher: list[np.ndarray], plain: list[np.ndarray]) -> dict[str, Any]:
    """:func:`privacy_checks` for images of different sizes (photos), one at a time: the chance
    level of each image is another photo (the next one) resized to its size."""
    per_filter: dict[str, dict[str, list[float]]] = {name: {} for name in PROCESSING}
    for i, (c, p) in enumerate(zip(cipher, plain, strict=True)):
        other = _resized(plain[(i + 1) % len(plain)], p.shape)
        result, _ = privacy_checks(c[None], p[None], other[None])
        for name, measures in result.items():
            for measure, values in measures.items():
                per_filter[name].setdefault(measure, []).append(values["mean"])
    return {name: {m: describe(v) for m, v in measures.items()} for name, measures in per_filter.items()}


def _resized(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    h, w, c = shape
    pil = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).convert("L" if c == 1 else "RGB")
    out = np.asarray(pil.resize((w, h), Image.Resampling.BILINEAR))
    return out.reshape(h, w, c)

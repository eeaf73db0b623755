"""Picture grids for reports (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def picture_grid(rows: Sequence[np.ndarray], titles: Sequence[str], path: Path, scale: float = 1.2) -> Path:
    """One row per uint8 batch (N, H, W, C), e.g. plaintext | ciphertext | recovered."""
    n = len(rows[0])
    fig, axes = plt.subplots(len(rows), n, figsize=(scale * n, scale * len(rows) + 0.3), squeeze=False)
    for r, (batch, title) in enumerate(zip(rows, titles, strict=True)):
        for c in range(n):
            ax = axes[r][c]
            img = batch[c]
            ax.imshow(
                img[..., 0] if img.shape[2] == 1 else img,
                cmap="gray",
                vmin=0,
                vmax=255,
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

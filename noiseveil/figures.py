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


def box_plot(groups: dict[str, np.ndarray], ylabel: str, path: Path) -> Path:
    """Box plot of per-image values, one box per group (whiskers at 1.5 IQR, mean as a cross)."""
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(groups), 3.2))
    ax.boxplot(list(groups.values()), showmeans=True, meanprops={"marker": "x", "markeredgecolor": "k"})
    ax.set_xticks(range(1, len(groups) + 1), list(groups), fontsize=8)
    ax.set_ylabel(ylabel if len(ylabel) < 40 else ylabel.split(":")[0], fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""Picture grids for reports (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _saved(fig: plt.Figure, path: Path) -> Path:
    """Lay out, write (making the folder) and close a figure."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
    return _saved(fig, path)


def box_plot(groups: dict[str, np.ndarray], ylabel: str, path: Path) -> Path:
    """Box plot of per-image values, one box per group (whiskers at 1.5 IQR, mean as a cross)."""
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(groups), 3.2))
    ax.boxplot(list(groups.values()), showmeans=True, meanprops={"marker": "x", "markeredgecolor": "k"})
    ax.set_xticks(range(1, len(groups) + 1), list(groups), fontsize=8)
    ax.set_ylabel(ylabel if len(ylabel) < 40 else ylabel.split(":")[0], fontsize=8)
    return _saved(fig, path)


def key_sweep_plot(per_key: dict[str, list[dict[str, float]]], path: Path) -> Path:
    """Fig. 8 style: mean PSNR, SSIM and LPIPS-style distance of each guessed key's decryption."""
    metrics = list(next(iter(per_key.values()))[0])
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3))
    for ax, metric in zip(np.atleast_1d(axes), metrics, strict=True):
        offset = 0
        for name, rows in per_key.items():
            values = [r[metric] for r in rows]
            ax.plot(
                range(offset, offset + len(values)), values, "o", ms=3 if len(values) > 1 else 8, label=name
            )
            offset += len(values)
        ax.set_xlabel("key guess", fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
    np.atleast_1d(axes)[0].legend(fontsize=7)
    return _saved(fig, path)


Series = dict[str, tuple[Sequence[float], Sequence[float]]]


def line_plot(
    left: Series, xlabel: str, ylabel: str, path: Path, right: tuple[Series, str] | None = None
) -> Path:
    """Lines with markers, one per named (xs, ys) series; ``right``: series on a second y axis."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for name, (xs, ys) in left.items():
        ax.plot(xs, ys, "o-", ms=3, label=name)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
        twin = ax.twinx()
        for name, (xs, ys) in right[0].items():
            twin.plot(xs, ys, "s--", ms=3, color="k", label=name)
        twin.set_ylabel(right[1], fontsize=8)
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize=7)
    return _saved(fig, path)


def scatter_plot(
    ours: dict[str, tuple[float, float]],
    reference: dict[str, tuple[float, float]],
    xlabel: str,
    ylabel: str,
    path: Path,
    target: tuple[float | None, float | None] = (None, None),
) -> Path:
    """Numbered points (the legend names them) beside reference points (the paper's, as
    stars), with the target region's edges as dashed lines: x at most target[0], y at least
    target[1]."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for i, (name, (x, y)) in enumerate(ours.items(), start=1):
        ax.plot(x, y, "o", ms=5, label=f"{i}. {name}")
        ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    for name, (x, y) in reference.items():
        ax.plot(x, y, "*", ms=9, color="k")
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, -8), fontsize=7)
    if target[0] is not None:
        ax.axvline(target[0], ls="--", lw=0.8, color="grey")
    if target[1] is not None:
        ax.axhline(target[1], ls="--", lw=0.8, color="grey")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _saved(fig, path)


def labelled_lines(
    series: dict[str, list[tuple[float, float, str]]],
    xlabel: str,
    ylabel: str,
    path: Path,
    vline: float | None = None,
    hlines: dict[str, float] | None = None,
) -> Path:
    """One line per named series of (x, y, label) points, each point labelled; dashed guides at
    x = ``vline`` and at each of ``hlines`` (named y values, drawn in the series' colour)."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, points in series.items():
        (line,) = ax.plot([p[0] for p in points], [p[1] for p in points], "o-", ms=3, label=name)
        for x, y, label in points:
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6)
        if hlines and name in hlines:
            ax.axhline(hlines[name], ls=":", lw=0.8, color=line.get_color())
    if vline is not None:
        ax.axvline(vline, ls="--", lw=0.8, color="grey")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.legend(fontsize=7)
    return _saved(fig, path)

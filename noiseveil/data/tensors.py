"""Conversions between the uint8 channels-last arrays and float32 NCHW tensors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch takes seconds to import; data loading alone should not pay for it
    import torch


def to_tensor(x_uint8: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 -> float32 (N, C, H, W) in [0, 1]."""
    import torch

    if x_uint8.dtype != np.uint8 or x_uint8.ndim != 4:
        raise ValueError(f"to_tensor expects uint8 (N, H, W, C), got {x_uint8.dtype} {x_uint8.shape}")
    x = np.ascontiguousarray(x_uint8)
    if not x.flags.writeable:  # torch.from_numpy warns on read-only memory
        x = x.copy()
    # Permute while still uint8 so that the contiguous copy is 4x smaller.
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().float().div_(255.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Float (N, C, H, W) in [0, 1] -> uint8 (N, H, W, C); rounds, clamps, and maps NaN to 0."""
    import torch

    if x.ndim != 4:
        raise ValueError(f"to_uint8 expects (N, C, H, W), got shape {tuple(x.shape)}")
    # float32 first: in half precision x * 255 is too coarse to round back to the right level.
    scaled = torch.nan_to_num(x.detach().cpu().float(), nan=0.0).clamp(0.0, 1.0) * 255.0
    return scaled.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()

"""The U-Net, shared by TransNet's transformation network h_θ and the inverse-network attacks
(which learn to undo a scheme with the same kind of network)."""

from __future__ import annotations

import torch
from torch import nn


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with ``len(widths) - 1`` poolings, [0, 1] in and out.

    ``x -> [double conv, pool] x (L-1) -> double conv -> [up-conv, concat skip, double conv] x (L-1)
    -> 1x1 conv -> sigmoid``. Image sides must be divisible by 2^(L-1).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.down.append(_double_conv(c, w))
            c = w
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.merge.append(_double_conv(2 * w, w))
            c = w
        self.out = nn.Conv2d(c, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([up(x), skip], dim=1))
        return torch.sigmoid(self.out(x))

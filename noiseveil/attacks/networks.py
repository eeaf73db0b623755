"""Small networks that attacks train on the CPU (their U-Net is :mod:`noiseveil.unet`)."""

from __future__ import annotations

import torch
from torch import nn


def down_block(c_in: int, c_out: int, norm: bool = True) -> list[nn.Module]:
    """A DCGAN stride-2 stage: 4x4 convolution, batch norm (not on the first), leaky ReLU."""
    return [nn.Conv2d(c_in, c_out, 4, 2, 1), *([nn.BatchNorm2d(c_out)] if norm else []), nn.LeakyReLU(0.2)]


def dcgan_stack(channels: int, width: int) -> nn.Sequential:
    """Three DCGAN stages: (C, H, W) -> (4·width, H/8, W/8)."""
    return nn.Sequential(
        *down_block(channels, width, norm=False),
        *down_block(width, 2 * width),
        *down_block(2 * width, 4 * width),
    )


class Discriminator(nn.Module):
    """Image -> real/fake logit (DCGAN)."""

    def __init__(self, channels: int, size: int, width: int = 32) -> None:
        super().__init__()
        self.net = dcgan_stack(channels, width)
        self.fc = nn.Linear(4 * width * (size // 8) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net(x).flatten(1)).squeeze(1)

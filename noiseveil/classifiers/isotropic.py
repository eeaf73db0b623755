"""Isotropic networks, the cloud models of the EtC scheme (:mod:`noiseveil.schemes.etc`).

Both start with a patch embedding: a convolution whose kernel and stride equal the patch
size, so each patch is embedded on its own by one linear map. When the patch size equals the
EtC block size, every patch is exactly one encrypted block, and the block-wise steps of EtC
(rotation/flip, negative-positive, colour shuffle: fixed linear maps per block position) can
be absorbed by that embedding and, for ViT, the block permutation by the learned position
embedding. That is why MaungMaung & Kiya (IEEE MultiMedia 2022) classify EtC images with
these networks without any adaptation network.

- :class:`ConvMixer`: Trockman & Kolter, "Patches Are All You Need?" (TMLR 2023).
- :class:`ViT`: Dosovitskiy et al., "An Image is Worth 16x16 Words" (ICLR 2021).

Both take images in [0, 1]; :class:`~noiseveil.classifiers.normalize.Normalize` is their
first layer (0.5 per channel unless given).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from noiseveil.classifiers.normalize import Normalize


def _stats(in_channels: int, values: Sequence[float] | None) -> Sequence[float]:
    return values if values is not None else (0.5,) * in_channels


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fn(x)


class ConvMixer(nn.Module):
    """ConvMixer-``dim``/``depth`` (Trockman & Kolter).

    ``image -> Normalize -> conv(patch, stride=patch), GELU, BN
    -> depth x [x + BN(GELU(depthwise conv k)), then BN(GELU(pointwise conv))]
    -> global average pool -> linear``

    For EtC images, ``patch_size`` must equal the EtC block size (the paper notes that
    ConvMixer's large kernels tolerate a mismatch better than ViT, at some accuracy cost).
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        dim: int = 256,
        depth: int = 8,
        patch_size: int = 16,
        kernel_size: int = 9,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.normalize = Normalize(_stats(in_channels, mean), _stats(in_channels, std))
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.stem = nn.Sequential(nn.GELU(), nn.BatchNorm2d(dim))
        self.blocks = nn.Sequential(
            *[
                nn.Sequential(
                    Residual(
                        nn.Sequential(
                            nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same"),
                            nn.GELU(),
                            nn.BatchNorm2d(dim),
                        )
                    ),
                    nn.Conv2d(dim, dim, 1),
                    nn.GELU(),
                    nn.BatchNorm2d(dim),
                )
                for _ in range(depth)
            ]
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(dim, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.patch_embed(self.normalize(x)))
        return self.head(self.blocks(x))


class ViT(nn.Module):
    """Vision transformer (Dosovitskiy et al.), pre-norm, trained from scratch here.

    ``image -> Normalize -> conv(patch, stride=patch) -> tokens + [class] token
    + learned position embedding -> depth x pre-norm transformer layer -> LayerNorm
    -> linear on the class token``

    For EtC images, ``patch_size`` must equal the EtC block size: then each token is one
    encrypted block, and the position embedding learns where the permuted blocks now sit.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        image_size: int = 32,
        patch_size: int = 16,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_dim: int = 384,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"ViT patch size {patch_size} does not divide the image size {image_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        n_patches = (image_size // patch_size) ** 2
        self.normalize = Normalize(_stats(in_channels, mean), _stats(in_channels, std))
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        layer = nn.TransformerEncoderLayer(
            dim, heads, mlp_dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            h, w = x.shape[-2:]
            raise ValueError(f"ViT was built for {self.image_size}x{self.image_size} images, got {h}x{w}")
        tokens = self.patch_embed(self.normalize(x)).flatten(2).transpose(1, 2)  # (N, patches, dim)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1) + self.pos_embed
        return self.head(self.norm(self.encoder(tokens))[:, 0])

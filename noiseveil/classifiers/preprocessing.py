"""What the cloud does to a photo before its network sees it, as a differentiable module.

A classifier a user brings (an ImageNet network, a face model) does not take "an image": it
takes a tensor of one size, one channel order and one normalisation, made from the photo by
a pipeline (torchvision's ``Resize(256) → CenterCrop(224) → Normalize``, or Caffe's BGR minus
the mean). A classifier card records that pipeline (:class:`Preprocessing`), and
:class:`PreprocessedClassifier` applies it in torch, so that

    photo (N, C, H, W) in [0, 1], any H×W ─resize shorter side─► crop ─channels─► normalise ─► net ─► logits

is one differentiable function of the photo's pixels. The cloud classifies with exactly this
module, and RIC's NAE attacks the ciphertext through it, so the label the attack secures is
the label the cloud's pipeline gives.

Resizing follows torchvision's tensor ``Resize`` (bilinear or bicubic, antialiased when
shrinking; the longer side is ``int(size · long / short)``) and ``CenterCrop`` (offsets
``round((H − h) / 2)``). Every step is linear in the pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from noiseveil.exceptions import NoiseveilError

CROPS = ("center", "none")  # centre crop after the resize, or squash straight to the input size
INTERPOLATIONS = ("bilinear", "bicubic")
CHANNEL_ORDERS = ("RGB", "BGR")
# ITU-R BT.601 luma, what Pillow's convert("L") uses: for a grey network fed a colour photo.
LUMA = (0.299, 0.587, 0.114)


class PreprocessingError(NoiseveilError):
    """Settings no pipeline can follow (a crop larger than the resize, a std of 0...)."""


@dataclass(frozen=True)
class Preprocessing:
    """A classifier card's input pipeline. ``mean`` and ``std`` are in [0, 1] pixel units and
    in the network's channel order (after ``channel_order`` is applied); a network trained on
    0-255 pixels minus a mean (Caffe) has ``std`` = 1/255."""

    input_size: tuple[int, int]  # (H, W) of the tensor the network takes
    resize: int | None = None  # shorter side resized to this first; None: the crop's shorter side
    crop: str = "center"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"
    channels: int = 3  # what the network takes: grey photos are repeated, colour ones made luma
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        h, w = self.input_size
        if h < 1 or w < 1:
            raise PreprocessingError(f"input size {h}x{w}: both sides must be at least 1")
        if self.crop not in CROPS:
            raise PreprocessingError(f"crop {self.crop!r}: one of {', '.join(CROPS)}")
        if self.interpolation not in INTERPOLATIONS:
            raise PreprocessingError(
                f"interpolation {self.interpolation!r}: one of {', '.join(INTERPOLATIONS)}"
            )
        if self.channel_order not in CHANNEL_ORDERS:
            raise PreprocessingError(f"channel order {self.channel_order!r}: RGB or BGR")
        if self.channels not in (1, 3):
            raise PreprocessingError(f"{self.channels} input channels: 1 or 3")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != self.channels:
                raise PreprocessingError(
                    f"{name} has {len(values)} values, the network takes {self.channels}"
                )
        if any(s <= 0 for s in self.std):
            raise PreprocessingError(f"std {self.std}: every value must be positive")
        if self.resize is not None and self.crop == "center" and self.resize < min(h, w):
            raise PreprocessingError(f"resize {self.resize} is smaller than the {h}x{w} crop")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        fields = dict(d)
        fields["input_size"] = tuple(fields["input_size"])
        fields["mean"], fields["std"] = tuple(fields["mean"]), tuple(fields["std"])
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["input_size"], d["mean"], d["std"] = list(self.input_size), list(self.mean), list(self.std)
        return d

    def describe(self) -> str:
        h, w = self.input_size
        steps = [f"resize shorter side to {self.shorter_side}"] if self.crop == "center" else []
        steps.append(f"centre crop {h}x{w}" if self.crop == "center" else f"resize to {h}x{w}")
        steps.append(f"{self.channel_order}, mean {_short(self.mean)}, std {_short(self.std)}")
        return ", ".join(steps)

    @property
    def shorter_side(self) -> int:
        return self.resize if self.resize is not None else min(self.input_size)


def _short(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


# Named pipelines: `noiseveil model add ... --preset NAME` (explicit options override them).
PRESETS: dict[str, dict[str, Any]] = {
    # torchvision's and timm's ImageNet evaluation pipeline.
    "imagenet": {
        "input_size": (224, 224),
        "resize": 256,
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
    },
    # Inception / many timm and Keras models: pixels to [-1, 1].
    "inception": {"input_size": (299, 299), "resize": 342, "mean": (0.5,) * 3, "std": (0.5,) * 3},
    # Caffe ImageNet models: BGR 0-255 pixels minus the channel means, no scaling.
    "caffe": {
        "input_size": (227, 227),
        "resize": 256,
        "mean": (103.939 / 255, 116.779 / 255, 123.68 / 255),
        "std": (1 / 255,) * 3,
        "channel_order": "BGR",
    },
}


def resized_shape(height: int, width: int, shorter: int) -> tuple[int, int]:
    """torchvision ``Resize(shorter)``: the shorter side becomes ``shorter``, the aspect is kept."""
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=shrinking)


def _center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = int(round((h - size[0]) / 2.0)), int(round((w - size[1]) / 2.0))
    return x[..., top : top + size[0], left : left + size[1]]


class PreprocessedClassifier(nn.Module):
    """A network behind its card's :class:`Preprocessing`: takes [0, 1] photos of any size.

    ``forward`` is differentiable in the photo's pixels (every step is linear), so an attack
    on the photo sees what the cloud's pipeline does to it.
    """

    def __init__(self, network: nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.network, self.preprocessing = network, preprocessing
        p = preprocessing
        self.register_buffer("mean", torch.tensor(p.mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(p.std, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("luma", torch.tensor(LUMA, dtype=torch.float32).view(1, 3, 1, 1))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """The tensor the network sees for ``images`` (N, C, H, W) in [0, 1]."""
        p = self.preprocessing
        x = images
        if p.crop == "center":
            x = _resize(x, resized_shape(x.shape[-2], x.shape[-1], p.shorter_side), p.interpolation)
            x = _center_crop(x, p.input_size)
        else:
            x = _resize(x, p.input_size, p.interpolation)
        if x.shape[1] != p.channels:
            x = x.expand(-1, 3, -1, -1) if p.channels == 3 else (x * self.luma).sum(1, keepdim=True)
        if p.channel_order == "BGR":
            x = x.flip(1)
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self.prepare(images))

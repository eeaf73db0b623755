"""The cloud's plaintext classifiers.

These are ordinary image classifiers, trained on plaintext and never retrained on
ciphertexts. Every one takes images in [0, 1] (the input normalisation is the first
layer, :class:`Normalize`), so a scheme can attack or query it without knowing how it
was trained.

- :class:`MnistCNN`: the 5-conv + 1-FC "M5" network of An et al. 2020, used by RIC for MNIST.
- :class:`SvhnCNN`: the 7-conv + 1-FC network of pytorch-playground, used by RIC for SVHN.
- :class:`ResNet`: He et al. 2016 with a CIFAR stem; ``resnet18`` is the paper's CIFAR-10
  classifier, smaller depths/widths are what a CPU trains in minutes, and a strided stem
  serves 64x64 faces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from noiseveil.classifiers.isotropic import ConvMixer, ViT
from noiseveil.classifiers.normalize import Normalize
from noiseveil.classifiers.preprocessing import PreprocessedClassifier, Preprocessing
from noiseveil.classifiers.squeezenet import SqueezeNet


def conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class MnistCNN(nn.Module):
    """M5 of An et al., "An ensemble of simple CNN models for MNIST digit recognition" (2020).

    ``28x28 -> 5 x [conv5x5, BN, ReLU] (no padding) -> 8x8xC5 -> FC -> logits``

    ``width=1.0`` gives the paper's channels (32, 64, 96, 128, 160); smaller widths scale
    every layer for CPU budgets.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        width: float = 1.0,
        mean: Sequence[float] = (0.1307,),
        std: Sequence[float] = (0.3081,),
    ) -> None:
        super().__init__()
        chans = [max(8, round(c * width)) for c in (32, 64, 96, 128, 160)]
        layers: list[nn.Module] = [Normalize(mean, std)]
        c_prev = in_channels
        for c in chans:
            layers.append(conv_bn_relu(c_prev, c, 5))
            c_prev = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_prev * 8 * 8, num_classes, bias=False),
            nn.BatchNorm1d(num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SvhnCNN(nn.Module):
    """The SVHN CNN of pytorch-playground (RIC's SVHN classifier): 7 conv + 1 FC.

    ``32x32 -> [n, n, M, 2n, 2n, M, 4n, 4n, M, 8n(valid)] -> FC`` with ``n = 32`` in the paper.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        n_channel: int = 32,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
    ):
        super().__init__()
        n = n_channel
        spec: list[int | str] = [n, n, "M", 2 * n, 2 * n, "M", 4 * n, 4 * n, "M"]
        layers: list[nn.Module] = [Normalize(mean, std)]
        c_prev = in_channels
        for item in spec:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(conv_bn_relu(c_prev, int(item), 3, padding=1))
                c_prev = int(item)
        layers.append(conv_bn_relu(c_prev, 8 * n, 3, padding=0))  # 4x4 -> 2x2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(8 * n * 2 * 2, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(c_in, c_out, 3, stride=stride, padding=1),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def input_statistics(
    in_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[Sequence[float], Sequence[float]]:
    """The training set's statistics, or defaults: CIFAR-10's for RGB, 0.5 per channel otherwise
    (3-channel defaults would broadcast a grey input to 3 channels and break the first conv)."""
    rgb = in_channels == 3
    mean = mean if mean is not None else (0.4914, 0.4822, 0.4465) if rgb else (0.5,) * in_channels
    std = std if std is not None else (0.2470, 0.2435, 0.2616) if rgb else (0.5,) * in_channels
    return mean, std


class ResNet(nn.Module):
    """ResNet (He et al., CVPR 2016) with the CIFAR stem (3x3 conv, no max-pool).

    ``image -> Normalize -> conv3x3(stride s) -> stages of BasicBlocks (stride 2 between
    stages) -> global average pool -> FC``

    ``blocks=(2, 2, 2, 2), widths=(64, 128, 256, 512)`` is ResNet-18 as used by RIC on
    CIFAR-10; ``stem_stride=2`` halves 64x64 inputs (faces) before the first stage.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        blocks: Sequence[int] = (2, 2, 2, 2),
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_stride: int = 1,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            Normalize(*input_statistics(in_channels, mean, std)),
            conv_bn_relu(in_channels, widths[0], 3, stem_stride, 1),
        ]
        c_prev = widths[0]
        for stage, (n_blocks, width) in enumerate(zip(blocks, widths, strict=True)):
            for i in range(n_blocks):
                stride = 2 if (stage > 0 and i == 0) else 1
                layers.append(BasicBlock(c_prev, width, stride))
                c_prev = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_prev, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.jit.export  # kept by torch.jit.script: a TorchScript face model still embeds
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer (pooled features): the embedding a face model compares."""
        return self.head[1](self.head[0](self.features(x)))  # pool, flatten: all but the last layer

    @torch.jit.export
    def embed_and_classify(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The embedding and the logits of one forward pass (AVP keeps both for faces)."""
        embedding = self.embed(x)
        return embedding, self.head[2](embedding)


class VGG(nn.Module):
    """VGG with batch normalisation (Simonyan & Zisserman, ICLR 2015), CIFAR-sized.

    ``image -> Normalize -> [conv3x3-BN-ReLU ... max-pool] per entry of ``stages`` -> global
    average pool -> FC``. ``stages=((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
    (512, 512, 512))`` is VGG16-BN as TransNet's paper uses it; the shipped card is narrower.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        stages: Sequence[Sequence[int]] = ((32, 32), (64, 64), (128, 128), (256, 256)),
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [Normalize(*input_statistics(in_channels, mean, std))]
        c_prev = in_channels
        for widths in stages:
            for width in widths:
                layers.append(conv_bn_relu(c_prev, width, 3, 1, 1))
                c_prev = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_prev, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "mnist-cnn": MnistCNN,
    "svhn-cnn": SvhnCNN,
    "resnet": ResNet,
    "vgg": VGG,
    "convmixer": ConvMixer,
    "vit": ViT,
    "squeezenet": SqueezeNet,
}


def build_classifier(arch: str, **config) -> nn.Module:
    """Instantiate a registered architecture with its configuration (as stored in a model card)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown classifier architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**config)


def freeze(model: nn.Module) -> nn.Module:
    """Evaluation mode with gradients off for parameters (inputs can still be attacked)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def classifier_from_payload(payload: dict[str, Any]) -> nn.Module:
    """The frozen classifier a payload describes ("arch", "config", "state_dict"), behind its
    card's input pipeline when it has one ("preprocessing": it then takes photos of any size)."""
    model = build_classifier(payload["arch"], **payload["config"])
    model.load_state_dict(payload["state_dict"])
    if payload.get("preprocessing") is not None:
        model = PreprocessedClassifier(model, Preprocessing.from_dict(payload["preprocessing"]))
    return freeze(model)

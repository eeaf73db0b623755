"""TransNet: a transformation network trained with a semi-trusted cloud.

Ito, Kinoshita & Kiya, *A Framework for Transformation Network Training in Coordination with
Semi-trusted Cloud Provider for Privacy-Preserving Deep Neural Networks*, APSIPA ASC 2020.
The cloud trains a classifier ψ on plain images; the user trains a U-Net h_θ through the
two-party protocol (:mod:`noiseveil.protocol`) so that ψ classifies h_θ(x) correctly while
h_θ(x) looks unlike x; then anyone protects images with the public h_θ::

    train:    user: x ──h_θ──▶ x̂ ─────▶ cloud: L_class(ψ(x̂), y), ∂L_class/∂x̂ ──▶ user
              L_trans = L_class(h_θ(x), y) − α·L_feat(x, h_θ(x))                 (eq. 4-6)
    protect:  x ──h_θ──▶ x̂ (8-bit PNG) ──▶ cloud: ψ(x̂)
    recover:  none: there is no key and no decryption (the capabilities say so)

Scaled for two CPU cores (stated in the model card and the report): a U-Net with widths
16-32-64 instead of the paper's full U-Net, trained for a few thousand steps with Adam instead
of 200 epochs of SGD; φ is the ImageNet SqueezeNet's relu1 instead of VGG16's second ReLU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from noiseveil.crypto.keys import Key
from noiseveil.data import to_tensor, to_uint8
from noiseveil.protocol import CloudService, HttpTransport, InProcessTransport, Transport
from noiseveil.protocol.user import TransformTraining, cloud_accuracy, train_transform
from noiseveil.schemes.base import (
    Capabilities,
    CloudModel,
    Payload,
    Scheme,
    SchemeError,
    TrainedScheme,
    TrainingPlan,
    plaintext_cloud_fields,
    resolve_classifier,
)
from noiseveil.unet import UNet

if TYPE_CHECKING:
    from noiseveil.data import ImageDataset


# L_feat's φ is divided by this: it sets the units of L_feat, and so what the paper's α values
# mean. It cannot be derived from VGG16's (another network, another layer depth), so it was
# calibrated on the paper's headline behaviour (scripts/calibrate_transnet_feature_scale.py,
# results/transnet/feature-scale.json): at α = 0.005 against the shipped ResNet-20, 255 x 0.226
# (the ratio of SqueezeNet's 0-255 input to VGG16's ImageNet-normalised one) left the images
# unprotected, the raw map (1) collapsed ψ's accuracy, and their geometric middle protects
# while ψ still classifies, as the paper reports for α = 0.005.
FEATURE_SCALE = round((255.0 * 0.226) ** 0.5, 2)  # 7.59


@dataclass(frozen=True)
class TransformConfig:
    """h_θ's architecture and φ's layer."""

    widths: tuple[int, ...] = (16, 32, 64)
    feature_layer: int = 0  # 0: SqueezeNet relu1 (VGG16's second ReLU in the paper); 1: fire3
    feature_scale: float = FEATURE_SCALE  # the units of L_feat


def build_transform(cfg: TransformConfig, channels: int) -> UNet:
    return UNet(channels, channels, tuple(cfg.widths))


@dataclass
class TransNetScheme(Scheme):
    """TransNet behind the common :class:`Scheme` interface (see the module docstring)."""

    classifier: CloudModel  # ψ, the cloud's: the CLI classifies protected images with it
    model_id: str
    image_shape: tuple[int, int, int]
    classifier_id: str
    transform: TransformConfig = field(default_factory=TransformConfig)
    transform_state: dict[str, torch.Tensor] = field(default_factory=dict)
    training: TransformTraining = field(default_factory=TransformTraining)

    name: ClassVar[str] = "transnet"
    capabilities: ClassVar[Capabilities] = Capabilities(
        recovers=False, exact=False, key=None, cloud_model="protocol"
    )

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(s) for s in self.image_shape)  # type: ignore[assignment]
        self.transform = TransformConfig(**{**asdict(self.transform), "widths": tuple(self.transform.widths)})
        self._net: UNet | None = None

    def cloud_classifier(self) -> nn.Module:
        self.classifier = resolve_classifier(self.classifier)
        return self.classifier

    def network(self) -> UNet:
        """h_θ, frozen (public: anyone may protect images, or attack with it)."""
        if self._net is None:
            if not self.transform_state:
                raise SchemeError(f"model {self.model_id} has no trained transformation network")
            net = build_transform(self.transform, self.image_shape[2])
            net.load_state_dict(self.transform_state)
            net.eval()
            for p in net.parameters():
                p.requires_grad_(False)
            self._net = net
        return self._net

    @torch.no_grad()
    def protect(self, images: torch.Tensor) -> np.ndarray:
        """h_θ(x) as the container stores it: uint8 (N, H, W, C), in batches of 256."""
        return to_uint8(torch.cat([self.network()(images[i : i + 256]) for i in range(0, len(images), 256)]))

    def _encrypt(
        self, images: torch.Tensor, key: Key, labels: torch.Tensor | None = None
    ) -> list[tuple[np.ndarray, dict[str, str]]]:
        return [(px, {}) for px in self.protect(images)]

    def _decrypt(self, pixels: torch.Tensor, fields: Sequence[dict[str, str]], key: Key) -> torch.Tensor:
        raise SchemeError("TransNet has no decryption")  # never reached: the base class checks recovers

    # -- persistence -----------------------------------------------------------------------
    def payload(self, extra: Payload | None = None) -> Payload:
        return {
            "image_shape": self.image_shape,
            "classifier_id": self.classifier_id,
            "transform": asdict(self.transform),
            "transform_state": self.transform_state,
            "training": asdict(self.training),
            **(extra or {}),
        }

    @classmethod
    def from_payload(
        cls, payload: Payload, model_id: str, classifier: CloudModel | None, classifier_id: str | None
    ) -> TransNetScheme:
        return cls(
            **plaintext_cloud_fields(payload, model_id, classifier, classifier_id),
            transform=TransformConfig(**payload["transform"]),
            transform_state=payload["transform_state"],
            training=TransformTraining(**payload["training"]),
        )

    # -- training through the protocol -------------------------------------------------------
    @classmethod
    def train(
        cls, plan: TrainingPlan, data: ImageDataset, classifier: CloudModel, checkpoint: Path
    ) -> TrainedScheme:
        """The user trains h_θ on the training split through the protocol: with the cloud's
        server at ``plan.cloud_url`` (ψ never enters this process), or an in-process cloud
        holding the card's classifier (the same messages)."""
        if plan.preset_override:
            raise SchemeError("--preset is for schemes with network presets; TransNet has one U-Net")
        if plan.key is not None:
            raise SchemeError(f"{plan.model_id} is keyless: --key does not apply")
        training = TransformTraining(**plan.train)
        if plan.budget is not None:
            training = replace(training, steps=plan.budget)
        if plan.cloud_url:  # the real protocol: ψ stays in the cloud's process
            transport: Transport = HttpTransport(plan.cloud_url, token=plan.cloud_token)
        else:
            cloud = CloudService(resolve_classifier(classifier), plan.image_shape, len(data.classes))
            transport = InProcessTransport(cloud)
        scheme, report = train_scheme(
            plan.model_id,
            plan.image_shape,
            plan.classifier_id,
            TransformConfig(**plan.config.get("transform", {})),
            training,
            data,
            transport,
            checkpoint,
        )
        scheme.classifier = classifier  # a loader: the user side never loads it
        accuracy = cloud_accuracy(transport, scheme.protect(to_tensor(data.x_test)), data.y_test)
        report["test_accuracy"] = accuracy  # ψ on the protected test split, as the cloud answered
        manifest = {
            "train_seconds": report["train_seconds"],
            "alpha": training.alpha,
            "test_accuracy": accuracy,
        }
        return TrainedScheme(scheme, report, manifest)


def train_scheme(
    model_id: str,
    image_shape: tuple[int, int, int],
    classifier_id: str,
    transform: TransformConfig,
    training: TransformTraining,
    data: ImageDataset,
    transport: Transport,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> tuple[TransNetScheme, dict[str, Any]]:
    """The user's whole part: train h_θ through ``transport`` and wrap it as a scheme whose
    cloud classifier is not known here (the caller attaches it, if it may)."""
    from noiseveil.perceptual import ImageNetFeatureMap  # loads the shipped LPIPS weights

    torch.manual_seed(training.seed)
    net = build_transform(transform, image_shape[2])
    phi = ImageNetFeatureMap(transform.feature_layer, transform.feature_scale)
    report = train_transform(net, data.x_train, data.y_train, transport, phi, training, checkpoint, progress)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    scheme = TransNetScheme(
        classifier=_no_cloud_model(classifier_id),
        model_id=model_id,
        image_shape=image_shape,
        classifier_id=classifier_id,
        transform=transform,
        transform_state=state,
        training=training,
    )
    parameters = sum(v.numel() for v in state.values())
    return scheme, {
        **report,
        "training": asdict(training),
        "transform": asdict(transform),
        "parameters": parameters,
    }


def _no_cloud_model(classifier_id: str) -> CloudModel:
    def refuse() -> nn.Module:
        raise SchemeError(f"the user side does not hold the cloud's classifier {classifier_id}")

    return refuse

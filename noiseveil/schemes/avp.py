"""AVP: visual privacy protection based on a Type-I adversarial attack.

Su, Zhou, Liu, Wang, Wang & Gao, *Visual privacy protection based on Type-I adversarial
attack* (preprint). The cloud's model is unmodified; the key is a generator network G,
trained as an autoencoder (G(x) ≈ x) and unique through its random initialisation (§4.3):

    key:      natural images ──train G(x) ≈ x (pix2pix ResNet generator)──▶ G   (GeneratorKey)

    encrypt:  x, random x'_0 ──Algorithm 1, K steps of momentum on L2-normalised gradients──▶ x'
              L_AVP(x', x) = L_t(x', x) + λ·L_v(x') + μ·‖x − G(x')‖²          (eq. 15)
              L_t = ‖f(x) − f(x')‖² on face features (eq. 16)
                    or −onehot(f(x))·f(x') on logits (eq. 17)
              L_v = Σ_c var_n(block sums of channel c)                        (eq. 12, 13)
    decrypt:  x̃ = G(x')

The ciphertext is x' itself, rounded to 8 bits (the attack runs on the rounded image, with a
straight-through gradient, so the cloud's label and G's reconstruction hold for the stored
pixels). Decryption is one forward pass of G: a lossy scheme whose fidelity each encryption
checks against the model's promised PSNR, and a few float ulps of G do not matter to it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from noiseveil.checksums import state_digest
from noiseveil.crypto.keys import Key, KeyFileError, SecretKey, register_key_kind
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
from noiseveil.schemes.nae import margin_loss
from noiseveil.timing import timed

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from noiseveil.data import ImageDataset


# -- the key model ------------------------------------------------------------------------------
@dataclass(frozen=True)
class GeneratorConfig:
    """The pix2pix/CycleGAN ResNet generator (Zhu et al. 2017), scaled to 2 CPU cores: the
    paper's key has 64 base filters and 9 residual blocks (11.4 M parameters); ours defaults to
    16 filters and 3 blocks (about 0.27 M), trained on 32-64 pixel images."""

    channels: int = 3
    filters: int = 16
    blocks: int = 3


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3),
            nn.InstanceNorm2d(width, affine=True),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3),
            nn.InstanceNorm2d(width, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """c7s1-F, d2F, d4F, R4F × blocks, u2F, uF, c7s1-C (instance norm, reflection padding);
    the output is mapped from tanh's (−1, 1) to images in (0, 1)."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        f, c = cfg.filters, cfg.channels

        def conv(c_in: int, c_out: int, **kw: Any) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, **kw),
                nn.InstanceNorm2d(c_out, affine=True),
                nn.ReLU(inplace=True),
            ]

        def up(c_in: int, c_out: int) -> list[nn.Module]:
            layer = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
            return [layer, nn.InstanceNorm2d(c_out, affine=True), nn.ReLU(inplace=True)]

        self.cfg = cfg
        self.net = nn.Sequential(
            nn.ReflectionPad2d(3),
            *conv(c, f, kernel_size=7),
            *conv(f, 2 * f, kernel_size=3, stride=2, padding=1),
            *conv(2 * f, 4 * f, kernel_size=3, stride=2, padding=1),
            *[ResidualBlock(4 * f) for _ in range(cfg.blocks)],
            *up(4 * f, 2 * f),
            *up(2 * f, f),
            nn.ReflectionPad2d(3),
            nn.Conv2d(f, c, 7),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        if h % 4 or w % 4:  # two stride-2 stages: pad to a multiple of 4, crop back
            x = F.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")
        return (self.net(x)[..., :h, :w] + 1) / 2


_GENERATOR_KEY_HEADER = b"noiseveil-key-generator-v1"


@dataclass(frozen=True, repr=False)
class GeneratorKey(Key):
    """AVP's key: a trained generator G (the secret that decrypts) plus 256 random bits that
    authenticate ciphertexts. The authentication key is derived from both, so a ciphertext
    verifies only under the very generator that made it (a modified key file fails its tag).

    File: a header line, a JSON line (configuration, the 256 bits, SHA-256 of the weights,
    how it was trained), then the weights as ``torch.save`` bytes; checked when loaded."""

    secret: SecretKey
    config: GeneratorConfig
    state: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)
    kind: ClassVar[str] = "generator"

    def __repr__(self) -> str:
        return f"GeneratorKey(id={self.key_id}, {self.config})"

    @functools.cached_property
    def weights_sha256(self) -> str:
        return state_digest(self.generator())

    @functools.cached_property
    def authenticator(self) -> SecretKey:
        return SecretKey(
            self.secret.derive("noiseveil/avp-generator", salt=bytes.fromhex(self.weights_sha256))
        )

    @property
    def key_id(self) -> str:
        return self.authenticator.key_id

    def mac(self, *message: Buffer) -> bytes:
        return self.authenticator.mac(*message)

    def generator(self) -> ResnetGenerator:
        """G, frozen; built once per key (every tag, key id and decryption uses it)."""
        return self._frozen_generator

    @functools.cached_property
    def _frozen_generator(self) -> ResnetGenerator:
        model = ResnetGenerator(self.config)
        model.load_state_dict(self.state)
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def to_file_bytes(self) -> bytes:
        blob = io.BytesIO()
        torch.save(self.state, blob)
        weights = blob.getvalue()
        header = {
            "config": asdict(self.config),
            "secret": self.secret.material.hex(),
            "sha256": hashlib.sha256(weights).hexdigest(),
            "info": self.info,
        }
        return _GENERATOR_KEY_HEADER + b"\n" + json.dumps(header, sort_keys=True).encode() + b"\n" + weights

    @classmethod
    def from_file_bytes(cls, data: bytes, path: Path) -> GeneratorKey:
        try:
            _, header_line, weights = data.split(b"\n", 2)
            header = json.loads(header_line)
            config = GeneratorConfig(**header["config"])
            secret = SecretKey(bytes.fromhex(header["secret"]))
        except (ValueError, KeyError, TypeError, KeyFileError):
            raise KeyFileError(f"{path}: generator key file is corrupt (bad header)") from None
        if hashlib.sha256(weights).hexdigest() != header.get("sha256"):
            raise KeyFileError(f"{path}: generator key file is corrupt (weights checksum mismatch)")
        state = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
        return cls(secret, config, state, header.get("info", {}))


register_key_kind(_GENERATOR_KEY_HEADER, GeneratorKey)


# -- training a key -----------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyTraining:
    """How a generator key is trained (the paper: 12,878 CelebA faces, batch 1, 4 epochs)."""

    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    natural_photos: bool = True  # add random crops of scikit-image's photographs to the domain's images


def _seed_words(seed: bytes) -> int:
    return int.from_bytes(hashlib.sha256(b"noiseveil avp key init/" + seed).digest()[:8], "little")


def train_generator_key(
    images: np.ndarray,
    cfg: GeneratorConfig,
    training: KeyTraining,
    seed: bytes | None = None,
    checkpoint: Path | None = None,
    progress: bool = False,
) -> GeneratorKey:
    """Train G(x) ≈ x (L1) on uint8 images (N, H, W, C): a new key. ``seed`` fixes the
    initialisation, the batch order and the 256 authentication bits (reproducible keys for
    experiments); without it all three are random. Resumes from ``checkpoint`` if it exists."""
    from noiseveil.checkpoint import TrainingState
    from noiseveil.progress import progress_bar

    seed = secrets.token_bytes(32) if seed is None else seed
    torch.manual_seed(_seed_words(seed))
    model = ResnetGenerator(cfg)
    optimiser = torch.optim.Adam(model.parameters(), lr=training.lr, betas=(0.5, 0.999))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, training.steps)
    order = torch.Generator().manual_seed(_seed_words(seed + b"/order"))
    state = TrainingState(model, optimiser, schedule, order)
    done = state.resume(checkpoint, {"step": 0, "seed": seed.hex()})
    if done.get("seed") != seed.hex():
        raise KeyFileError(f"{checkpoint}: a checkpoint of another key's training; remove it or pick another")
    data = torch.from_numpy(images).permute(0, 3, 1, 2)
    model.train()
    bar = progress_bar(
        total=training.steps, initial=done["step"], desc="train key", unit="step", disable=not progress
    )
    for step in range(done["step"], training.steps):
        idx = torch.randint(len(data), (training.batch_size,), generator=order)
        x = data[idx].float() / 255.0
        loss = F.l1_loss(model(x), x)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        bar.update(1)
        bar.set_postfix(l1=f"{loss.item():.4f}")
        if (step + 1) % 100 == 0 or step + 1 == training.steps:
            state.save(checkpoint, {"step": step + 1, "seed": seed.hex()})
    bar.close()
    secret = SecretKey(hashlib.sha256(b"noiseveil avp key secret/" + seed).digest())
    info = {"training": asdict(training), "images": len(images)}
    return GeneratorKey(secret, cfg, {k: v.detach().clone() for k, v in model.state_dict().items()}, info)


# -- encryption: Algorithm 1 ----------------------------------------------------------------------
@dataclass(frozen=True)
class AVPConfig:
    """Algorithm 1's settings. ``task``: "features" (eq. 16, faces: the cloud model's
    penultimate features) or "classification" (eq. 17)."""

    task: str = "classification"
    iterations: int = 600  # K (paper: 800 for faces, 600 for CIFAR-10)
    step: float = 0.02  # β, the initial step size in [0, 1] pixel units per unit gradient
    momentum: float = 0.9  # α
    max_increases: int = 5  # maxnum: loss increases tolerated before β ← 0.85 β
    lam: float = 1e-4  # λ, weight of L_v
    mu: float = 1.0  # μ, weight of L_g
    block: int = 8  # h = w of the blocks whose sums L_v equalises
    init: str = "random"  # x'_0: "random" (uniform) or "original" (x'_0 = x)
    # "variance": λ·L_v (eq. 15, the paper's method); "distance": −λ·L_d (eq. 6 + 11, its ablation)
    visual_loss: str = "variance"
    # Not in the paper: κ·max(max_{i≠y} z_i − z_y, −m) on the cloud's logits z, y the plaintext's
    # label. L_t keeps a face's embedding close, which the self-check's label need not follow
    # (the sweep measured one face in 16 changing label at SSIM_e 0.04). κ = 0: the paper's loss.
    label_weight: float = 0.0
    label_margin: float = 2.0  # m: no push once the label leads by this many logits


def variance_consistency(x: torch.Tensor, block: int) -> torch.Tensor:
    """L_v (eq. 12, 13) per image: the variance of every (overlapping) block sum, summed over channels."""
    c = x.shape[1]
    kernel = torch.ones(c, 1, block, block, dtype=x.dtype)
    sums = F.conv2d(x, kernel, groups=c)  # (N, C, H−b+1, W−b+1): every block's sum, per channel
    return sums.flatten(2).var(dim=2).sum(dim=1)


def _rounded(x: torch.Tensor) -> torch.Tensor:
    """x on the 8-bit grid, with the identity's gradient (straight-through)."""
    return x + ((x * 255).round() / 255 - x).detach()


# -- the scheme -----------------------------------------------------------------------------------
@dataclass
class AVPScheme(Scheme):
    """AVP behind the common :class:`Scheme` interface (see the module docstring)."""

    classifier: CloudModel
    model_id: str
    image_shape: tuple[int, int, int]
    classifier_id: str
    attack: AVPConfig = field(default_factory=AVPConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    key_training: KeyTraining = field(default_factory=KeyTraining)
    dataset: str = ""  # the domain a key is trained on (noiseveil.data.load_dataset)
    demo_key_bytes: bytes = b""  # a PUBLIC key shipped for demos and tests (no privacy)
    max_tries: int = 2  # a failed image is attacked again with twice the iterations
    promised_psnr: float = 0.0
    stats: Counter = field(default_factory=Counter)

    name: ClassVar[str] = "avp"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=False, key="generator")

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(s) for s in self.image_shape)  # type: ignore[assignment]
        if self.attack.task not in ("features", "classification"):
            raise SchemeError(f"unknown AVP task {self.attack.task!r}: features or classification")
        if self.attack.visual_loss not in ("variance", "distance"):
            raise SchemeError(f"unknown AVP visual loss {self.attack.visual_loss!r}: variance or distance")

    def cloud_classifier(self) -> nn.Module:
        self.classifier = resolve_classifier(self.classifier)
        return self.classifier

    # -- keys ------------------------------------------------------------------------------
    def keygen(
        self,
        seed: bytes | None = None,
        *,
        progress: bool = False,
        checkpoint: Path | None = None,
        budget: int | None = None,
    ) -> Key:
        """Train a new generator key on the domain's training images (and, by default, crops
        of scikit-image's photographs). Minutes of CPU: see :class:`KeyTraining`."""
        training = self.key_training if budget is None else replace(self.key_training, steps=budget)
        images = self.key_training_images()
        return train_generator_key(images, self.generator, training, seed, checkpoint, progress)

    def key_training_images(self) -> np.ndarray:
        return key_training_images(self.dataset, self.image_shape, self.key_training.natural_photos)

    def demo_key(self) -> Key:
        """The PUBLIC generator key shipped with the model (demos and tests; no privacy)."""
        if not self.demo_key_bytes:
            raise SchemeError(f"model {self.model_id} ships no demo key: make one with `noiseveil keygen`")
        return GeneratorKey.from_file_bytes(self.demo_key_bytes, Path(f"<demo key of {self.model_id}>"))

    # -- encryption ------------------------------------------------------------------------
    def preserved_output(self, x: torch.Tensor) -> torch.Tensor:
        """What encryption keeps of an image (N, C, H, W) in [0, 1]: the cloud model's face
        embedding (features task) or its logits (classification). Public, like the model."""
        classifier = self.cloud_classifier()
        if self.attack.task == "classification":
            return classifier(x)
        if not hasattr(classifier, "embed"):
            raise SchemeError(f"classifier {self.classifier_id} exposes no embed() for the feature task")
        return classifier.embed(x)

    def _preserved_and_logits(
        self, x: torch.Tensor, task: str, with_logits: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What encryption keeps of ``x`` and, if asked, the cloud's logits: one forward pass
        where the classifier embeds and classifies at once (``embed_and_classify``)."""
        classifier = self.cloud_classifier()
        if task == "classification":
            logits = classifier(x)
            return logits, logits
        if not with_logits:
            return self.preserved_output(x), None
        if hasattr(classifier, "embed_and_classify"):
            return classifier.embed_and_classify(x)
        return self.preserved_output(x), classifier(x)

    def encrypt_batch(self, images: torch.Tensor, key: GeneratorKey, cfg: AVPConfig) -> torch.Tensor:
        """Algorithm 1 on a batch (N, C, H, W) in [0, 1]; returns x' on the 8-bit grid."""
        G = key.generator()
        keep_label = cfg.label_weight > 0
        with torch.no_grad():
            target, logits = self._preserved_and_logits(images, cfg.task, keep_label)
            label = None if logits is None else logits.argmax(1)
            if cfg.task == "classification":
                target = F.one_hot(target.argmax(1), target.shape[1]).float()
        x_adv = torch.rand_like(images) if cfg.init == "random" else images.clone()
        n = len(images)
        beta = torch.full((n,), cfg.step)
        g = torch.zeros_like(images)
        increases = torch.zeros(n, dtype=torch.long)
        previous = torch.full((n,), float("inf"))
        for _ in range(cfg.iterations):
            x_adv.requires_grad_(True)
            x_q = _rounded(x_adv)
            out, logits = self._preserved_and_logits(x_q, cfg.task, keep_label)
            # eq. 17 (raise the original's class logit) or eq. 16 (keep the face embedding)
            classify = cfg.task == "classification"
            loss_t = -(target * out).sum(1) if classify else (out - target).pow(2).sum(1)
            if keep_label:
                loss_t = loss_t + cfg.label_weight * margin_loss(logits, label, cfg.label_margin)
            loss_g = (images - G(x_q)).pow(2).flatten(1).sum(1)
            if cfg.visual_loss == "variance":
                visual = variance_consistency(x_q, cfg.block)
            else:  # L_d = ‖x − x'‖², maximised
                visual = -(images - x_q).pow(2).flatten(1).sum(1)
            loss = loss_t + cfg.lam * visual + cfg.mu * loss_g
            (grad,) = torch.autograd.grad(loss.sum(), x_adv)
            with torch.no_grad():
                norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
                g = cfg.momentum * g + grad / norm[:, None, None, None]
                x_adv = (x_adv - beta[:, None, None, None] * g).clamp(0.0, 1.0)
                increases += (loss > previous).long()
                previous = loss.detach()
                decay = increases > cfg.max_increases
                beta[decay] *= 0.85
                increases[decay] = 0
        return (x_adv.detach() * 255).round() / 255

    def _encrypt(
        self, images: torch.Tensor, key: Key, labels: torch.Tensor | None = None
    ) -> list[tuple[np.ndarray, dict[str, str]]]:
        cfg = self.attack
        out = self.encrypt_batch(images, key, cfg)  # type: ignore[arg-type]
        iterations = [cfg.iterations] * len(images)
        self.stats["encrypted"] += len(images)
        for attempt in range(1, self.max_tries):
            todo = self._failing(images, out, key)  # type: ignore[arg-type]
            if not todo:
                break
            self.stats["first_try_failed" if attempt == 1 else "retried"] += len(todo)
            cfg = replace(cfg, iterations=2 * cfg.iterations)
            out[todo] = self.encrypt_batch(images[todo], key, cfg)  # type: ignore[arg-type]
            for i in todo:
                iterations[i] = cfg.iterations
        pixels = (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        # Public and authenticated: how many attack steps made this ciphertext (a retried image
        # took more), for provenance; decryption does not need it.
        return [(pixels[i], {"iterations": str(iterations[i])}) for i in range(len(pixels))]

    @torch.no_grad()
    def _failing(self, images: torch.Tensor, x_adv: torch.Tensor, key: GeneratorKey) -> list[int]:
        """Images whose ciphertext changes the cloud's label or decrypts below the promise."""
        from noiseveil.data.tensors import to_uint8
        from noiseveil.metrics import psnr

        classifier = self.cloud_classifier()
        wrong = classifier(images).argmax(1) != classifier(x_adv).argmax(1)
        fidelity = psnr(to_uint8(key.generator()(x_adv).clamp(0, 1)), to_uint8(images))
        return [i for i in range(len(images)) if wrong[i] or fidelity[i] < self.promised_psnr]

    @torch.no_grad()
    def _decrypt(self, pixels: torch.Tensor, fields: Sequence[dict[str, str]], key: Key) -> torch.Tensor:
        return key.generator()(pixels).clamp(0.0, 1.0)  # type: ignore[attr-defined]

    # -- persistence -----------------------------------------------------------------------
    def payload(self, extra: Payload | None = None) -> Payload:
        return {
            "image_shape": self.image_shape,
            "classifier_id": self.classifier_id,
            "attack": asdict(self.attack),
            "generator": asdict(self.generator),
            "key_training": asdict(self.key_training),
            "key_dataset": self.dataset,
            "demo_key": self.demo_key_bytes,
            "promised_psnr": self.promised_psnr,
            **(extra or {}),
        }

    @classmethod
    def figure(cls, entry: Mapping[str, Any]) -> str:
        if not entry.get("generator_parameters"):
            return super().figure(entry)
        # a trained key: its size, and the floor its decryption promises
        return (
            f"key: a {entry['generator_parameters']:,}-parameter generator; decrypts to >= "
            f"{entry['promised_psnr']:.0f} dB (classifier {entry['classifier_id']})"
        )

    @classmethod
    def from_payload(
        cls, payload: Payload, model_id: str, classifier: CloudModel | None, classifier_id: str | None
    ) -> AVPScheme:
        return cls(
            **plaintext_cloud_fields(payload, model_id, classifier, classifier_id),
            attack=AVPConfig(**payload["attack"]),
            generator=GeneratorConfig(**payload["generator"]),
            key_training=KeyTraining(**payload["key_training"]),
            dataset=payload["key_dataset"],
            demo_key_bytes=payload.get("demo_key", b""),
            promised_psnr=float(payload.get("promised_psnr", 0.0)),
        )

    @classmethod
    def train(
        cls, plan: TrainingPlan, data: ImageDataset, classifier: CloudModel, checkpoint: Path
    ) -> TrainedScheme:
        """The model is its settings; what is trained is a key (:meth:`keygen`). A PUBLIC demo
        key, trained from a published seed, ships inside the model for demos and tests."""
        if plan.preset_override:
            raise SchemeError("--preset is for schemes with network presets; AVP's key is trained by keygen")
        if plan.key is not None:
            raise SchemeError(f"{plan.model_id} works with every generator key: --key does not apply")
        training = KeyTraining(**plan.train)
        if plan.budget is not None:
            training = replace(training, steps=plan.budget)
        scheme = cls(
            classifier=classifier,
            model_id=plan.model_id,
            image_shape=plan.image_shape,
            classifier_id=plan.classifier_id,
            attack=AVPConfig(**plan.config.get("attack", {})),
            generator=GeneratorConfig(channels=plan.image_shape[2], **plan.config.get("generator", {})),
            key_training=training,
            dataset=data.name,
            promised_psnr=float(plan.config.get("promised_psnr", 0.0)),
        )
        seed = f"noiseveil public AVP demo key/{plan.model_id}".encode()
        demo, seconds = timed(lambda: scheme.keygen(seed=seed, checkpoint=checkpoint, progress=True))
        scheme.demo_key_bytes = demo.to_file_bytes()
        parameters = sum(v.numel() for v in demo.state.values())
        report = {
            "key_training": asdict(training),
            "generator": asdict(scheme.generator),
            "parameters": parameters,
        }
        return TrainedScheme(
            scheme,
            {**report, "train_seconds": seconds, "demo_key_id": demo.key_id},
            {
                "train_seconds": seconds,
                "demo_key_id": demo.key_id,
                "generator_parameters": parameters,
                "promised_psnr": scheme.promised_psnr,
            },
        )


@functools.lru_cache(maxsize=2)
def key_training_images(dataset: str, shape: tuple[int, int, int], natural_photos: bool) -> np.ndarray:
    """A key's training images: the domain's training split and, with ``natural_photos``, as
    many random crops of scikit-image's photographs as a quarter of it."""
    from noiseveil.data import load_dataset
    from noiseveil.data.images import natural_images

    images = load_dataset(dataset).x_train
    if natural_photos:
        crops = photo_crops(natural_images(), shape, len(images) // 4)
        images = np.concatenate([images, crops])
    return images


def photo_crops(
    photos: Sequence[np.ndarray], shape: tuple[int, int, int], count: int, seed: int = 0
) -> np.ndarray:
    """``count`` random square crops (1/8 to 1/2 of the short side) of ``photos``, resized to ``shape``."""
    from noiseveil.data.images import conform

    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        side = int(min(photo.shape[:2]) * rng.uniform(1 / 8, 1 / 2))
        top, left = rng.integers(photo.shape[0] - side + 1), rng.integers(photo.shape[1] - side + 1)
        crops.append(photo[top : top + side, left : left + side])
    return conform(crops, shape)

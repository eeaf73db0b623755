"""RIC: recoverable privacy-preserving image classification with noise-like adversarial examples.

Liu, Zhou, Tian, Sun, "Recoverable Privacy-Preserving Image Classification through
Noise-like Adversarial Examples", ACM TOMM 2024 (arXiv:2310.12707). Equations cited below
are the paper's.

Encryption (data provider)::

    key, nonce ──ChaCha20──► n ──Φ: margin attack on C, target ŷ = argmax C(x)──► n_adv
    x ──F──► x_f ──┐
                   ├─ concat ──E──► u_en ──(1−λ)·u_en + λ·n_adv──► x' ──Q──► x'_q (8-bit PNG)
    n_adv ─────────┘                                       (eq. 5, 6)

Classification (cloud): ỹ = argmax C(x'_q), with the unmodified plaintext classifier (eq. 7).

Decryption (authorised user)::

    key, nonce ──► n_adv (regenerated, eq. 8)
    x'_q ──(x'_q − λ·n_adv)/(1−λ)──► u'_en ──D──► x̃          (eq. 9, 10)

Training minimises β·‖x − x̃‖₂ + max(max_{i≠y} C(x'_q)_i − C(x'_q)_y, −g2) (eq. 11-13), with
Q replaced by additive U(−0.5, 0.5)/255 noise so that it is differentiable.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from noiseveil.checksums import state_digest
from noiseveil.classifiers.architectures import freeze
from noiseveil.crypto.keys import (
    PayloadError,
    SecretKey,
    keyed_pad,
    keyed_uniform,
    new_nonce,
    open_payload,
    seal_payload,
)
from noiseveil.schemes.base import (
    Capabilities,
    Ciphertext,
    CloudModel,
    Payload,
    Scheme,
    SchemeError,
    TrainedScheme,
    TrainingPlan,
    resolve_classifier,
)
from noiseveil.schemes.nae import NAEConfig, generate_nae

if TYPE_CHECKING:
    from noiseveil.data import ImageDataset

_NAE_USE = "ric/nae"  # the sealed NAE a format-2 ciphertext carries


@dataclass(frozen=True)
class RICConfig:
    """Network shape and loss weights. ``PRESETS['paper']`` is the paper's."""

    channels: int = 3  # image channels (1 grey, 3 RGB)
    width: int = 32  # channels per branch
    depths: tuple[int, ...] = (2,)  # convs per branch in each multi-receptive stage
    kernels: tuple[int, int, int] = (3, 3, 3)
    dilations: tuple[int, int, int] = (1, 2, 3)  # receptive fields 3, 5, 7 at 3x3 cost
    feature_channels: int | None = 32  # F's 1x1 projection; None keeps all branch channels
    lam: float = 0.8  # λ, the NAE's share of the ciphertext (eq. 5)
    beta: float = 10.0  # β, weight of the reconstruction loss (eq. 11)
    g2: float = 5.0  # adversarial extent of the ciphertext (eq. 13)
    srl: bool = True  # symmetric residual learning (eq. 5 and 9); False = "NAE w/o SRL"
    adversarial_noise: bool = True  # False = "RNI w/ SRL": blend the raw noise n, not n_adv
    # Beyond the paper (see RIC.encode): E and D learn corrections around the image itself, and
    # the encoded image is hidden by a keyed one-time pad modulo 1 before the blend, so that
    # no processing of the ciphertext can show the image.
    residual: bool = False
    keyed_pad: bool = False
    pad_margin: float = 0.025  # the image occupies [m, 1 − m] of the pad's circle (see RIC.encode)


PRESETS: dict[str, RICConfig] = {
    # Liu et al.: 50-channel branches of 4 convs with kernels 3, 4, 5, a second multi-kernel
    # stage, λ = 0.8, β = 10, g1 = g2 = 5 (Adam lr 1e-4 for training).
    "paper": RICConfig(
        width=50, depths=(4, 1), kernels=(3, 4, 5), dilations=(1, 1, 1), feature_channels=None
    ),
    # CPU preset: dilated 3x3 branches give the same receptive fields for a fraction of the cost.
    "fast": RICConfig(),
    # "fast" plus image residuals and a keyed pad, at λ = 0.7 (not in the paper; see RIC.encode).
    "masked": RICConfig(residual=True, keyed_pad=True, lam=0.7),
}


class MultiReceptiveStack(nn.Module):
    """Stages of three parallel conv branches with different receptive fields, concatenated.

    ``x ─┬─ branch(k1, d1) ─┐
         ├─ branch(k2, d2) ─┼─ concat ─► next stage ─► ... ─► [1x1 projection]``
         └─ branch(k3, d3) ─┘
    """

    def __init__(self, c_in: int, cfg: RICConfig, c_out: int | None) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        for depth in cfg.depths:
            branches = nn.ModuleList()
            for k, d in zip(cfg.kernels, cfg.dilations, strict=True):
                layers: list[nn.Module] = []
                for i in range(depth):
                    layers += [
                        nn.Conv2d(c_in if i == 0 else cfg.width, cfg.width, k, dilation=d, padding="same"),
                        nn.ReLU(inplace=True),
                    ]
                branches.append(nn.Sequential(*layers))
            self.stages.append(branches)
            c_in = 3 * cfg.width
        self.project = nn.Conv2d(c_in, c_out, 1) if c_out is not None else nn.Identity()
        self.out_channels = c_out if c_out is not None else c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for branches in self.stages:
            x = torch.cat([branch(x) for branch in branches], dim=1)
        return self.project(x)


def quantize(x: torch.Tensor, training: bool) -> torch.Tensor:
    """Q: 8-bit quantisation; additive U(−0.5, 0.5) noise stands in for rounding in training (eq. 6)."""
    x = x * 255.0
    x = x + torch.empty_like(x).uniform_(-0.5, 0.5) if training else torch.round(x)
    return torch.clamp(x, 0.0, 255.0) / 255.0


class RIC(nn.Module):
    """The trainable part of RIC: feature extractor F, encoder E and decoder D."""

    def __init__(self, cfg: RICConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.feature = MultiReceptiveStack(c, cfg, cfg.feature_channels)  # F
        self.encoder = MultiReceptiveStack(self.feature.out_channels + c, cfg, c)  # E
        self.decoder = MultiReceptiveStack(c if cfg.srl else 2 * c, cfg, c)  # D
        if cfg.keyed_pad and not (cfg.residual and cfg.srl):
            raise ValueError("keyed_pad pads the image residual inside SRL's blend: keep residual and srl")
        if cfg.residual and not cfg.srl:
            raise ValueError("residual works on SRL's u = (x'_q − λ·n_adv)/(1 − λ): keep srl")
        if cfg.residual:  # E and D start as the identity: training learns corrections
            for stack in (self.encoder, self.decoder):
                nn.init.zeros_(stack.project.weight)
                nn.init.zeros_(stack.project.bias)

    def encode(self, x: torch.Tensor, n_adv: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """x' before quantisation (eq. 5; without SRL, x' = u_en).

        With ``residual``, E learns a correction e to the image, v = x + e, instead of an
        identity through a ReLU stack, so the model starts at the fidelity 8-bit rounding
        allows. That alone would put (1 − λ)·x in plain view, so ``keyed_pad`` sends v through
        a one-time pad on the circle [0, 1): u_en = frac(m + (1 − 2m)·v + k), with k keyed
        uniform per pixel. For any image, u_en is then uniform whatever x is, so no filter,
        contrast stretch or statistic of the ciphertext depends on the image. The margin m
        keeps the image off the wrap point: decryption's rounding error (≤ 0.5/255/(1 − λ))
        cannot carry a black pixel round to white.
        """
        u_en = self.encoder(torch.cat([self.feature(x), n_adv], dim=1))
        if self.cfg.residual:
            u_en = u_en + x
        if self.cfg.keyed_pad:
            # v stays on its arc of the circle: a correction pushed past black or white would
            # wrap round and decrypt as its opposite (MNIST training collapsed that way).
            m = self.cfg.pad_margin
            v = u_en.clamp(0.0, 1.0)
            u_en = torch.remainder(m + (1.0 - 2.0 * m) * v + self._check_pad(pad), 1.0)
        if not self.cfg.srl:
            return u_en
        return (1.0 - self.cfg.lam) * u_en + self.cfg.lam * n_adv

    def decode(self, x_q: torch.Tensor, n_adv: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """x̃ from the quantised ciphertext and the regenerated NAE (eq. 9, 10)."""
        if self.cfg.srl:
            u = (x_q - self.cfg.lam * n_adv) / (1.0 - self.cfg.lam)
        else:
            u = torch.cat([x_q, n_adv], dim=1)
        if self.cfg.keyed_pad:
            m = self.cfg.pad_margin
            u = (torch.remainder(u - self._check_pad(pad), 1.0) - m) / (1.0 - 2.0 * m)
        out = self.decoder(u)
        return u + out if self.cfg.residual else out

    def _check_pad(self, pad: torch.Tensor | None) -> torch.Tensor:
        if pad is None:
            raise ValueError("this RIC model uses a keyed pad: pass pad (uniform in [0, 1), like x)")
        return pad

    def forward(
        self, x: torch.Tensor, n_adv: torch.Tensor, pad: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x'_q, x̃): quantisation noise in training, rounding and clipping otherwise."""
        x_q = quantize(self.encode(x, n_adv, pad), self.training)
        x_rec = self.decode(x_q, n_adv, pad)
        return x_q, x_rec if self.training else x_rec.clamp(0.0, 1.0)


@dataclass
class RICScheme(Scheme):
    """RIC behind the common :class:`Scheme` interface (keys, nonces, NAE, sealing)."""

    model: RIC
    classifier: nn.Module
    model_id: str
    image_shape: tuple[int, int, int]
    classifier_id: str
    nae: NAEConfig = field(default_factory=NAEConfig)
    max_tries: int = 4  # encryption attempts per image until C(x'_q) = C(x); 1 = the paper
    # The worst per-image PSNR encryption accepts (its self-check); shipped models set theirs.
    promised_psnr: float = 0.0
    # Counters since construction: images encrypted, first tries that changed the label,
    # re-encryptions, and images that still disagreed after max_tries.
    stats: Counter = field(default_factory=Counter)

    name: ClassVar[str] = "ric"
    capabilities: ClassVar[Capabilities] = Capabilities(exact=False)  # a learned decoder: a stated PSNR

    def cloud_classifier(self) -> nn.Module:
        return self.classifier

    @cached_property
    def num_classes(self) -> int:
        """How many labels the cloud classifier outputs (one forward pass on a blank image)."""
        h, w, c = self.image_shape
        with torch.no_grad():
            return int(self.classifier(torch.zeros(1, c, h, w)).shape[1])

    # -- keyed pieces ------------------------------------------------------------------
    def noise(self, key: SecretKey, nonces: Sequence[bytes]) -> torch.Tensor:
        """n = PRNG(k, nonce) for each image (eq. 1)."""
        h, w, c = self.image_shape
        return torch.from_numpy(
            np.stack([keyed_uniform(key, nonce, "ric/noise", (c, h, w)) for nonce in nonces])
        )

    def pad(self, key: SecretKey, nonces: Sequence[bytes]) -> torch.Tensor | None:
        """Keyed uniform pad k per image (``keyed_pad`` models only), independent of the noise n."""
        if not self.model.cfg.keyed_pad:
            return None
        h, w, c = self.image_shape
        pads = [keyed_uniform(key, nonce, "ric/pad", (c, h, w)) for nonce in nonces]
        return torch.from_numpy(np.stack(pads))

    @staticmethod
    def _label_pad(key: SecretKey, nonce: bytes) -> int:
        return int.from_bytes(keyed_pad(key, nonce, "ric/label", 2), "big")

    def nae_for(
        self,
        key: SecretKey,
        nonces: Sequence[bytes],
        targets: torch.Tensor,
        cfg: NAEConfig | None = None,
    ) -> torch.Tensor:
        return self.nae_from_noise(self.noise(key, nonces), targets, cfg)

    def nae_from_noise(
        self, noise: torch.Tensor, targets: torch.Tensor, cfg: NAEConfig | None = None
    ) -> torch.Tensor:
        """n_adv = Φ(n) (eq. 2-4); the raw noise itself for the "RNI" ablation."""
        if not self.model.cfg.adversarial_noise:
            return noise
        return generate_nae(self.classifier, noise, targets, cfg or self.nae, self.model.cfg.lam)

    def key_material(
        self, ciphertext: Ciphertext, key: SecretKey
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(noise, target, pad) that ``key`` gives ``ciphertext``, as decryption derives them:
        what an attack on the key probes (:class:`~noiseveil.attacks.nes.NoiseKeyedScheme`)."""
        nonce = bytes.fromhex(ciphertext.fields["nonce"])
        target = (int(ciphertext.fields["target"], 16) ^ self._label_pad(key, nonce)) % self.num_classes
        return self.noise(key, [nonce]), torch.tensor([target]), self.pad(key, [nonce])

    @torch.no_grad()
    def recover_from_noise(
        self, x_q: torch.Tensor, noise: torch.Tensor, target: torch.Tensor, pad: torch.Tensor | None
    ) -> torch.Tensor:
        """D((x'_q − λΦ(r)) / (1 − λ)) of one ciphertext for a batch of noises r in [0, 1]."""
        n_adv = self.nae_from_noise(noise, target.expand(len(noise)))
        p = None if pad is None else pad.expand(len(noise), -1, -1, -1)
        return self.model.decode(x_q.expand(len(noise), -1, -1, -1), n_adv, p)

    def retry_nae(self, attempt: int) -> NAEConfig:
        """Φ's settings for encryption attempt ``attempt`` (0 = first): each retry doubles the
        steps. A fresh nonce alone rarely helps: failures cluster on target classes that noise
        reaches slowly (MNIST's "1" at λ 0.8 nearly always misses at 20 steps, not at 80). The header records
        the settings used, so decryption regenerates the same NAE."""
        return replace(self.nae, steps=self.nae.steps * 2**attempt)

    # -- Scheme interface ---------------------------------------------------------------
    @torch.no_grad()
    def _encrypt(
        self, images: torch.Tensor, key: SecretKey, labels: torch.Tensor | None = None
    ) -> list[tuple[np.ndarray, dict[str, str]]]:
        self.model.eval()
        targets = labels if labels is not None else self.classifier(images).argmax(1)
        nonces: list[bytes] = [b""] * len(images)
        nae_cfgs: list[NAEConfig] = [self.nae] * len(images)
        naes: list[str] = [""] * len(images)
        weights = state_digest(self.model)
        x_q = torch.empty_like(images)
        todo = torch.arange(len(images))
        # The data provider holds the classifier, so it checks C(x'_q) = ŷ itself and redoes
        # the rare failure with a fresh nonce (a fresh NAE): label agreement is then guaranteed
        # for every image that succeeds within ``max_tries`` rather than merely likely.
        for attempt in range(self.max_tries):
            fresh = [new_nonce() for _ in todo]
            cfg = self.retry_nae(attempt)
            # n_adv on the 8-bit grid, sealed into the ciphertext: decryption reads it back
            # instead of re-running Φ, whose floating point need not repeat in another process.
            n_adv = (self.nae_for(key, fresh, targets[todo], cfg) * 255.0).round() / 255.0
            pad = self.pad(key, fresh)
            x_q[todo] = quantize(self.model.encode(images[todo], n_adv, pad), training=False)
            for j, (i, nonce) in enumerate(zip(todo.tolist(), fresh, strict=True)):
                nonces[i], nae_cfgs[i], naes[i] = nonce, cfg, self._seal_nae(key, nonce, n_adv[j])
            self.stats["encrypted" if attempt == 0 else "retried"] += len(todo)
            todo = todo[self.classifier(x_q[todo]).argmax(1) != targets[todo]]
            if attempt == 0:
                self.stats["first_try_failed"] += len(todo)
            if len(todo) == 0:
                break
        self.stats["disagreeing"] += len(todo)
        pixels = (x_q * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        out = []
        for i, nonce in enumerate(nonces):
            # The NAE target travels masked with a one-time pad, so decryption never depends
            # on the cloud's answer and the file itself does not reveal the label.
            masked = (int(targets[i]) ^ self._label_pad(key, nonce)) & 0xFFFF
            fields = {
                "nonce": nonce.hex(),
                "lambda": repr(self.model.cfg.lam),
                "classifier": self.classifier_id,
                "target": f"{masked:04x}",
                **nae_cfgs[i].as_fields(),
                "nae": naes[i],
                "weights": weights,
            }
            out.append((pixels[i], fields))
        return out

    def _seal_nae(self, key: SecretKey, nonce: bytes, n_adv: torch.Tensor) -> str:
        levels = (n_adv * 255.0).round().to(torch.uint8).numpy().tobytes()
        return base64.b64encode(seal_payload(key, nonce, _NAE_USE, levels)).decode("ascii")

    def _open_nae(self, key: SecretKey, nonce: bytes, sealed: str) -> torch.Tensor:
        h, w, c = self.image_shape
        try:
            levels = open_payload(key, nonce, _NAE_USE, base64.b64decode(sealed, validate=True))
        except (PayloadError, ValueError) as err:
            raise SchemeError(f"the ciphertext's sealed NAE does not open ({err})") from None
        if len(levels) != c * h * w:
            raise SchemeError("the ciphertext's sealed NAE has the wrong size")
        return torch.frombuffer(bytearray(levels), dtype=torch.uint8).reshape(c, h, w).float() / 255.0

    @torch.no_grad()
    def _decrypt(
        self, pixels: torch.Tensor, fields: Sequence[dict[str, str]], key: SecretKey
    ) -> torch.Tensor:
        self.model.eval()
        try:
            nonces = [bytes.fromhex(f["nonce"]) for f in fields]
            lams = {float(f["lambda"]) for f in fields}
        except (KeyError, ValueError) as err:
            raise SchemeError(f"ciphertext metadata is incomplete or malformed ({err})") from None
        if lams != {self.model.cfg.lam}:
            raise SchemeError(f"ciphertext λ {sorted(lams)} does not match model λ {self.model.cfg.lam}")
        weights, mine = {f.get("weights") for f in fields} - {None}, state_digest(self.model)
        if weights and weights != {mine}:
            # D must be the very network that made the ciphertext, or the image does not come back.
            raise SchemeError(
                f"ciphertext was made with other weights of {self.model_id} (sha256 "
                f"{', '.join(w[:12] for w in sorted(weights))}), these are {mine[:12]}"
            )
        n_adv = torch.empty_like(pixels)
        sealed = [i for i, f in enumerate(fields) if "nae" in f]
        for i in sealed:
            n_adv[i] = self._open_nae(key, nonces[i], fields[i]["nae"])
        legacy = [i for i, f in enumerate(fields) if "nae" not in f]
        if legacy:
            n_adv[legacy] = self._regenerate_nae(
                [fields[i] for i in legacy], [nonces[i] for i in legacy], key
            )
        return self.model.decode(pixels, n_adv, self.pad(key, nonces)).clamp(0.0, 1.0)

    def _regenerate_nae(
        self, fields: Sequence[dict[str, str]], nonces: Sequence[bytes], key: SecretKey
    ) -> torch.Tensor:
        """Format 1 (before the NAE was sealed in): re-run Φ as encryption did. Only as
        reliable as floating point repeating itself in this process (issue 11)."""
        try:
            # A verified ciphertext's target is already a class index; through hazmat.decrypt_unverified a
            # guessed key unmasks a random 16-bit number, reduced to a class as an attacker would.
            targets = (
                torch.tensor(
                    [
                        int(f["target"], 16) ^ self._label_pad(key, n)
                        for f, n in zip(fields, nonces, strict=True)
                    ]
                )
                % self.num_classes
            )
            cfgs = [NAEConfig.from_fields(f, self.nae.chunk) for f in fields]
        except (KeyError, ValueError) as err:
            raise SchemeError(f"ciphertext metadata is incomplete or malformed ({err})") from None
        used = {f.get("classifier") for f in fields}
        if used != {self.classifier_id}:
            # Φ must run on the very classifier that made the NAE, or n_adv differs.
            raise SchemeError(
                f"ciphertext NAE was made with classifier {', '.join(map(str, used))}, "
                f"not {self.classifier_id}"
            )
        h, w, c = self.image_shape
        out = torch.empty(len(fields), c, h, w)
        for cfg in set(cfgs):  # usually one; files encrypted with other NAE settings are grouped
            idx = [i for i, other in enumerate(cfgs) if other == cfg]
            out[idx] = self.nae_for(key, [nonces[i] for i in idx], targets[idx], cfg)
        return out

    # -- persistence -----------------------------------------------------------------------
    def payload(self, extra: Payload | None = None) -> Payload:
        return {
            "config": asdict(self.model.cfg),
            "classifier_id": self.classifier_id,
            "state_dict": self.model.state_dict(),
            "image_shape": self.image_shape,
            "nae": asdict(self.nae),
            **(extra or {}),
        }

    @classmethod
    def from_payload(
        cls, payload: Payload, model_id: str, classifier: CloudModel | None, classifier_id: str | None
    ) -> RICScheme:
        """The shipped networks, against ``classifier`` (the cloud model they were trained with,
        or a replacement recorded as ``classifier_id``)."""
        if classifier is None:
            raise SchemeError(f"model {model_id} needs the cloud classifier it was trained against")
        cfg = RICConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in payload["config"].items()})
        model = RIC(cfg)
        model.load_state_dict(payload["state_dict"])
        return cls(
            model=freeze(model),
            classifier=resolve_classifier(classifier),
            model_id=model_id,
            classifier_id=classifier_id or payload["classifier_id"],
            image_shape=tuple(payload["image_shape"]),
            nae=NAEConfig(**payload["nae"]),
        )

    @classmethod
    def train(
        cls, plan: TrainingPlan, data: ImageDataset, classifier: CloudModel, checkpoint: Path
    ) -> TrainedScheme:
        """Train the encoder/decoder pair against the cloud classifier (section 3 of the paper)."""
        from noiseveil.schemes.ric_training import PRESET_LR, RICTrainConfig, fit_ric, pool_tag

        if plan.preset not in PRESETS:
            raise SchemeError(f"unknown preset {plan.preset!r}; known: {', '.join(PRESETS)}")
        if plan.key is not None:
            raise SchemeError(f"{plan.model_id} works with every key: --key applies to key-bound models")
        train = {**plan.train, "lr": PRESET_LR[plan.preset]} if plan.preset_override else dict(plan.train)
        ric_cfg = replace(PRESETS[plan.preset], channels=plan.image_shape[2], **plan.config)
        train_cfg = RICTrainConfig(**train)
        if plan.budget is not None:
            train_cfg = replace(train_cfg, steps=plan.budget)
        scheme = cls(
            model=RIC(ric_cfg),
            classifier=resolve_classifier(classifier),
            model_id=plan.model_id,
            image_shape=plan.image_shape,
            classifier_id=plan.classifier_id,
            nae=NAEConfig(**plan.nae),
        )
        report = fit_ric(scheme, data, train_cfg, checkpoint, cache_tag=pool_tag(plan.classifier_id, scheme))
        final = report["curve"][-1] if report["curve"] else {}
        return TrainedScheme(
            scheme,
            {
                "ric_config": asdict(ric_cfg),
                "parameters": sum(p.numel() for p in scheme.model.parameters()),
                "nae": asdict(scheme.nae),
                **report,
            },
            {
                "preset": plan.preset,
                "val_psnr": final.get("val_psnr"),
                "train_seconds": report["train_seconds"],
            },
        )

    @property
    def nae_settings(self) -> dict[str, Any]:
        return asdict(self.nae)

    @classmethod
    def figure(cls, entry: Mapping[str, Any]) -> str:
        if entry.get("val_psnr") is None:
            return super().figure(entry)
        return f"val PSNR {entry['val_psnr']:.2f} dB (classifier {entry['classifier_id']})"

    def with_nae(self, **changes) -> RICScheme:
        return replace(self, nae=self._changed_nae(self.nae, changes))

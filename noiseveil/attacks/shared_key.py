"""Reconstruction from many ciphertexts of one key model (after Jang, Lyu, Hwang & Yang,
*Unveiling Hidden Visual Information: A Reconstruction Attack Against Adversarial Visual
Information Hiding*, 2024), for schemes whose key is a generator (AVP).

The attacker holds N ciphertexts made with the victim's key model and no plaintext. What they
do know: the public recipe of a key (an autoencoder G(x) ≈ x of the domain), the cloud's model
f, whose output the encryption keeps (f(x') ≈ f(x)), and images of the domain. They train a
surrogate key G' on the victim's ciphertexts::

    start:  G' ← a key of their own (the public recipe, their own initialisation)
    loss:   d(f(A(G'(x'))), f(x'))             augmented identity loss: G'(x') must look, to f,
                                                 like what x' shows f, after a random flip/shift A
          + γ_adv · softplus(−D(G'(x')))         generative-adversarial loss: D tells the
                                                 attacker's domain images from G'(x')
          + γ_ae · ‖G'(y) − y‖₁ on own images y   G' stays an autoencoder, as every key is

d is 1 − cosine on face embeddings (features task) or the KL divergence of the logits
(classification). The augmentation and the discriminator are the paper's two remedies against
G' overfitting f with adversarial patterns; the autoencoder term is ours (every key of the
public recipe is one, so the attacker may ask it of G'). The attack is transductive, as in the
paper: it reconstructs the stored ciphertexts it trained on, and can be applied to others.

The adversarial term is off by default (``adversarial_weight=0``): with our small DCGAN
discriminator and a few hundred steps on 64x64 faces, it lowered the reconstructions' SSIM in
our probes, while the augmentation raised it; `noiseveil report avp` measures both variants
(results/avp/report.md).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from noiseveil.attacks.base import Attack, pixels_of
from noiseveil.attacks.networks import Discriminator
from noiseveil.crypto.keys import Key
from noiseveil.data import to_tensor, to_uint8
from noiseveil.progress import progress_bar
from noiseveil.schemes.base import Ciphertext, Scheme


class GeneratorKeyedScheme(Protocol):
    """What the attack needs of a scheme: a key that is a generator, and the public output of
    the cloud's model that encryption keeps."""

    image_shape: tuple[int, int, int]

    def preserved_output(self, x: torch.Tensor) -> torch.Tensor: ...

    def keygen(self, seed: bytes | None = None, **kwargs: Any) -> Key: ...


def random_flip_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 4) -> torch.Tensor:
    """The identity loss's augmentation A: a random horizontal flip and translation per batch
    (reflection padding, so no black borders for f to latch onto)."""
    if torch.rand((), generator=generator) < 0.5:
        x = x.flip(3)
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
    h, w = x.shape[2:]
    padded = F.pad(x, (max_shift,) * 4, mode="reflect")
    return padded[..., max_shift + dy : max_shift + dy + h, max_shift + dx : max_shift + dx + w]


class SharedKeyReconstructionAttack(Attack):
    """Train a surrogate key model on many ciphertexts of one victim key (see the module)."""

    name = "shared-key"
    threat = (
        "N ciphertexts of one key model (no plaintexts), the public key recipe and cloud model, "
        "images of the domain"
    )

    def __init__(
        self,
        scheme: Scheme,
        shared_ciphertexts: Sequence[Ciphertext],
        aux_images: np.ndarray,
        task: str,
        start_key: Key | None = None,
        steps: int = 400,
        batch_size: int = 16,
        lr: float = 5e-4,
        adversarial_weight: float = 0.0,
        autoencoder_weight: float = 1.0,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(scheme)
        if task not in ("features", "classification"):
            raise ValueError(f"unknown task {task!r}: features or classification")
        if not shared_ciphertexts:
            raise ValueError("the shared-key attack needs ciphertexts of the victim's key")
        self.cipher, self.aux = pixels_of(shared_ciphertexts), aux_images
        self.task, self.start_key = task, start_key
        self.steps, self.batch_size, self.lr, self.seed = steps, batch_size, lr, seed
        self.adversarial_weight, self.autoencoder_weight, self.augment = (
            adversarial_weight,
            autoencoder_weight,
            augment,
        )
        self.surrogate: nn.Module | None = None

    def _identity_loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.task == "features":
            return (1 - F.cosine_similarity(out, target, dim=1)).mean()
        return F.kl_div(
            F.log_softmax(out, 1), F.log_softmax(target, 1), log_target=True, reduction="batchmean"
        )

    def fit(self) -> dict[str, Any]:
        scheme: GeneratorKeyedScheme = self.scheme  # type: ignore[assignment]
        start = time.perf_counter()
        key = self.start_key or scheme.keygen(seed=f"noiseveil shared-key attacker/{self.seed}".encode())
        key_seconds = time.perf_counter() - start
        surrogate = copy.deepcopy(key.generator()).train()  # type: ignore[attr-defined]
        for p in surrogate.parameters():
            p.requires_grad_(True)
        h, _, c = scheme.image_shape
        torch.manual_seed(self.seed)
        discriminator = Discriminator(c, h)
        x_c, x_own = to_tensor(self.cipher), to_tensor(self.aux)
        with torch.no_grad():  # what f sees in each ciphertext: by design, what it saw in the plaintext
            target = torch.cat([scheme.preserved_output(x_c[i : i + 128]) for i in range(0, len(x_c), 128)])
        gen = torch.Generator().manual_seed(self.seed)
        opt_g = torch.optim.Adam(surrogate.parameters(), self.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
        history = []
        for step in progress_bar(range(self.steps), desc=self.name, leave=False):
            idx = torch.randint(0, len(x_c), (min(self.batch_size, len(x_c)),), generator=gen)
            own = x_own[torch.randint(0, len(x_own), (self.batch_size,), generator=gen)]
            fake = surrogate(x_c[idx])
            d_loss = F.softplus(-discriminator(own)).mean() + F.softplus(discriminator(fake.detach())).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            shown = random_flip_shift(fake, gen) if self.augment else fake
            identity = self._identity_loss(scheme.preserved_output(shown), target[idx])
            realism = F.softplus(-discriminator(fake)).mean()
            autoencoder = F.l1_loss(surrogate(own), own)
            loss = identity + self.adversarial_weight * realism + self.autoencoder_weight * autoencoder
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            if step % 50 == 0 or step == self.steps - 1:
                history.append(
                    {
                        "step": step,
                        "identity": identity.item(),
                        "realism": realism.item(),
                        "autoencoder_l1": autoencoder.item(),
                        "d_loss": d_loss.item(),
                    }
                )
        self.surrogate = surrogate.eval()
        return {
            "shared_ciphertexts": len(x_c),
            "aux_images": len(x_own),
            "steps": self.steps,
            "adversarial_weight": self.adversarial_weight,
            "autoencoder_weight": self.autoencoder_weight,
            "augment": self.augment,
            "start_key_id": key.key_id,
            "history": history,
            "key_seconds": key_seconds,
            "train_seconds": time.perf_counter() - start - key_seconds,
        }

    @torch.no_grad()
    def reconstruct(self, ciphertexts: Sequence[Ciphertext], labels: np.ndarray) -> np.ndarray:
        if self.surrogate is None:
            raise RuntimeError("fit() the shared-key attack before calling it")
        x = to_tensor(pixels_of(ciphertexts))
        return to_uint8(
            torch.cat([self.surrogate(x[i : i + 128]).clamp(0, 1) for i in range(0, len(x), 128)])
        )

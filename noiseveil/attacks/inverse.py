"""Attacks that learn an inverse network from (ciphertext, plaintext) pairs.

- :class:`ITNAttack`, the inverse-transformation-network attack (Ito et al., used by the EtC
  and TransNet papers): the algorithm and its trained networks are public, so the attacker
  encrypts images of the same domain with keys of their own, as many as they like, and
  trains a network from ciphertext to plaintext; it is then applied to the victim's
  ciphertexts, made with a key the attacker never saw.
- :class:`KnownPlaintextAttack` (RIC eq. 17): the attacker holds N pairs of ciphertext and
  plaintext made with the victim's key, trains the same network on them, and applies it to
  other ciphertexts of that key (or of others).

Both train :class:`~noiseveil.attacks.networks.UNet` with an L1 loss; they differ only in
where the pairs come from.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from noiseveil.attacks.base import Attack, pixels_of
from noiseveil.crypto.keys import Key
from noiseveil.data import to_tensor, to_uint8
from noiseveil.progress import progress_bar
from noiseveil.schemes.base import Ciphertext, Scheme
from noiseveil.unet import UNet


class InverseNetworkAttack(Attack):
    """Train a U-Net from ciphertext pixels to plaintext on :meth:`training_pairs`."""

    def __init__(
        self,
        scheme: Scheme,
        steps: int = 1500,
        batch_size: int = 64,
        lr: float = 2e-3,
        widths: tuple[int, ...] = (32, 64, 128),
        seed: int = 0,
    ) -> None:
        super().__init__(scheme)
        self.steps, self.batch_size, self.lr, self.seed = steps, batch_size, lr, seed
        channels = scheme.image_shape[2]
        torch.manual_seed(seed)
        self.net = UNet(channels, channels, widths)

    @abstractmethod
    def training_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (ciphertext pixels, plaintexts), both (N, H, W, C)."""

    def fit(self) -> dict:
        start = time.perf_counter()
        cipher, plain = self.training_pairs()
        pair_seconds = time.perf_counter() - start
        x, y = to_tensor(cipher), to_tensor(plain)
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.steps)
        self.net.train()
        losses = []
        for _ in progress_bar(range(self.steps), desc=self.name, leave=False):
            idx = torch.randint(0, len(x), (min(self.batch_size, len(x)),), generator=gen)
            loss = nn.functional.l1_loss(self.net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        self.net.eval()
        return {
            "pairs": len(x),
            "steps": self.steps,
            "first_l1": float(np.mean(losses[:10])),
            "final_l1": float(np.mean(losses[-50:])),
            "pair_seconds": pair_seconds,
            "train_seconds": time.perf_counter() - start - pair_seconds,
        }

    @torch.no_grad()
    def reconstruct(self, ciphertexts: Sequence[Ciphertext], labels: np.ndarray) -> np.ndarray:
        x = to_tensor(pixels_of(ciphertexts))
        return to_uint8(torch.cat([self.net(x[i : i + 256]) for i in range(0, len(x), 256)]))


def attacker_key(scheme: Scheme, seed: int, index: int) -> Key:
    """The attacker's own keys, made by the scheme: reproducible, and independent of every
    victim key."""
    return scheme.keygen(seed=f"noiseveil attacker key/{seed}/{index}".encode())


class ITNAttack(InverseNetworkAttack):
    """Inverse-transformation network trained on pairs made with the attacker's own keys."""

    name = "itn"
    threat = "public algorithm and networks, images of the domain, unlimited own-key pairs"

    def __init__(
        self,
        scheme: Scheme,
        aux_images: np.ndarray,
        images_per_key: int = 16,
        keys: Sequence[Key] | None = None,
        **kwargs,
    ) -> None:
        """A new attacker key for every ``images_per_key`` images; or, where a key costs minutes
        to make (AVP's trained generators), the attacker's ``keys`` given, shared out in turn."""
        super().__init__(scheme, **kwargs)
        self.aux_images, self.images_per_key = aux_images, images_per_key
        self.keys = list(keys) if keys is not None else None
        if self.keys is not None and not self.keys:
            raise ValueError("the ITN attack needs at least one attacker key")

    def _key(self, k: int) -> Key:
        return self.keys[k % len(self.keys)] if self.keys else attacker_key(self.scheme, self.seed, k)

    def training_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        cipher, plain = [], []
        batches = range(0, len(self.aux_images), self.images_per_key)
        for k, start in enumerate(progress_bar(batches, desc="itn: own-key pairs", unit="key", leave=False)):
            batch = self.aux_images[start : start + self.images_per_key]
            # the pairs the attacker's own encryptions give: an image the self-check refuses
            # has no ciphertext, as the victim's refused images have none
            encrypted = self.scheme.encrypt_kept(to_tensor(batch), self._key(k))
            if encrypted.ciphertexts:
                cipher.append(pixels_of(encrypted.ciphertexts))
                plain.append(batch[encrypted.kept])
        if not cipher:
            raise ValueError("itn: the self-check refused every one of the attacker's own encryptions")
        return np.concatenate(cipher), np.concatenate(plain)


class KnownPlaintextAttack(InverseNetworkAttack):
    """Inverse network trained on the victim's own (ciphertext, plaintext) pairs (RIC eq. 17)."""

    name = "kpa"
    threat = "N known (ciphertext, plaintext) pairs of the victim's key"

    def __init__(
        self, scheme: Scheme, known_ciphertexts: Sequence[Ciphertext], known_plaintexts: np.ndarray, **kwargs
    ) -> None:
        super().__init__(scheme, **kwargs)
        self.known = (pixels_of(known_ciphertexts), known_plaintexts)

    def training_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        return self.known

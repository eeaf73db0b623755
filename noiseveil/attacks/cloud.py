"""Cloud attack (RIC Appendix B, eq. 25 and 26): an honest-but-curious cloud inverts ciphertexts.

The cloud holds the classifier C and ciphertexts x'_q with their labels ŷ = argmax C(x'_q).
It trains an encoder E (ciphertext -> latent w) and a generator G (w -> image) so that
x̂ = G(E(x'_q)) is classified as ŷ, looks real to a discriminator D, and varies::

    min_{E,G}  CE(C(x̂), ŷ) − η1 · log(1 + exp(D(x̂))) − η2 · (1/d_w) Σ_j Var_N(w^j)   (eq. 25, 26)

Departures, said where they are reported:

- the paper uses StyleALAE's pre-trained face discriminator; none is available here, so D is
  trained alongside (a standard GAN discriminator loss) on the attacker's own plaintext images
  of the same domain (real) against the current x̂ (fake);
- w passes through tanh, so the variance reward is bounded (the paper does not say how it
  keeps eq. 26 from growing without limit).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from noiseveil.attacks.base import Attack, pixels_of
from noiseveil.attacks.networks import Discriminator, dcgan_stack
from noiseveil.data import to_tensor, to_uint8
from noiseveil.progress import progress_bar
from noiseveil.schemes.base import Ciphertext, Scheme


class Encoder(nn.Module):
    """Image (C, H, W) -> latent w in (-1, 1)^latent: three stride-2 convs and a linear layer."""

    def __init__(self, channels: int, size: int, latent: int = 128, width: int = 32) -> None:
        super().__init__()
        self.net = dcgan_stack(channels, width)
        self.fc = nn.Linear(4 * width * (size // 8) ** 2, latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(self.net(x).flatten(1)))


class Generator(nn.Module):
    """Latent w -> image in [0, 1]: a linear layer and three stride-2 transposed convs (DCGAN)."""

    def __init__(self, channels: int, size: int, latent: int = 128, width: int = 32) -> None:
        super().__init__()
        self.start = (4 * width, size // 8, size // 8)
        self.fc = nn.Linear(latent, int(np.prod(self.start)))
        layers: list[nn.Module] = []
        for c_in, c_out in ((4 * width, 2 * width), (2 * width, width)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.net = nn.Sequential(
            nn.BatchNorm2d(4 * width), nn.ReLU(), *layers, nn.ConvTranspose2d(width, channels, 4, 2, 1)
        )

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(self.fc(w).view(-1, *self.start)))


class CloudAttack(Attack):
    """Encoder + generator trained on the cloud's ciphertexts against its own classifier."""

    name = "cloud"
    threat = "the cloud: its classifier, ciphertexts and their labels, images of the domain"

    def __init__(
        self,
        scheme: Scheme,
        ciphertexts: Sequence[Ciphertext],
        domain_images: np.ndarray,
        steps: int = 1500,
        batch_size: int = 64,
        lr: float = 2e-4,
        eta1: float = 0.1,
        eta2: float = 1.0,
        latent: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__(scheme)
        h, w, c = scheme.image_shape
        if h != w:
            raise ValueError(f"the cloud attack's networks take square images, got {h}x{w}")
        torch.manual_seed(seed)
        # The generator upsamples 8x from a grid of side//8: it draws on the next multiple of 8
        # and its output is centre-cropped to the image (28x28 MNIST: drawn at 32x32).
        self.side = h
        self.encoder = Encoder(c, h, latent)
        self.generator = Generator(c, -(-h // 8) * 8, latent)
        self.discriminator = Discriminator(c, h)
        self.cipher, self.domain = pixels_of(ciphertexts), domain_images
        self.steps, self.batch_size, self.lr, self.eta1, self.eta2, self.seed = (
            steps,
            batch_size,
            lr,
            eta1,
            eta2,
            seed,
        )

    def fit(self) -> dict:
        start = time.perf_counter()
        classifier = self.scheme.cloud_classifier()
        classifier.eval()
        x_c, x_real = to_tensor(self.cipher), to_tensor(self.domain)
        with torch.no_grad():  # the cloud's labels of its ciphertexts
            y_hat = torch.cat([classifier(x_c[i : i + 256]).argmax(1) for i in range(0, len(x_c), 256)])
        gen = torch.Generator().manual_seed(self.seed)
        opt_g = torch.optim.Adam(
            [*self.encoder.parameters(), *self.generator.parameters()], self.lr, betas=(0.5, 0.999)
        )
        opt_d = torch.optim.Adam(self.discriminator.parameters(), self.lr, betas=(0.5, 0.999))
        history = []
        for step in progress_bar(range(self.steps), desc=self.name, leave=False):
            idx = torch.randint(0, len(x_c), (self.batch_size,), generator=gen)
            real = x_real[torch.randint(0, len(x_real), (self.batch_size,), generator=gen)]
            w = self.encoder(x_c[idx])
            fake = self._draw(w)
            # D: real domain images against the current reconstructions.
            d_loss = (
                F.softplus(-self.discriminator(real)).mean()
                + F.softplus(self.discriminator(fake.detach())).mean()
            )
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            # E, G: eq. 25.
            ce = F.cross_entropy(classifier(fake), y_hat[idx])
            realism = F.softplus(self.discriminator(fake)).mean()
            diversity = w.var(dim=0, unbiased=True).mean()  # eq. 26, averaged over the d_w dimensions
            g_loss = ce - self.eta1 * realism - self.eta2 * diversity
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            if step % 100 == 0 or step == self.steps - 1:
                history.append(
                    {"step": step, "ce": ce.item(), "d_loss": d_loss.item(), "diversity": diversity.item()}
                )
        self.encoder.eval()
        self.generator.eval()
        with torch.no_grad():
            fooled = torch.cat(
                [
                    classifier(self._draw(self.encoder(x_c[i : i + 256]))).argmax(1)
                    for i in range(0, len(x_c), 256)
                ]
            )
        return {
            "ciphertexts": len(x_c),
            "domain_images": len(x_real),
            "steps": self.steps,
            "eta1": self.eta1,
            "eta2": self.eta2,
            "label_match_on_training_ciphertexts": float((fooled == y_hat).float().mean()),
            "history": history,
            "train_seconds": time.perf_counter() - start,
        }

    @torch.no_grad()
    def reconstruct(self, ciphertexts: Sequence[Ciphertext], labels: np.ndarray) -> np.ndarray:
        x = to_tensor(pixels_of(ciphertexts))
        out = torch.cat([self._draw(self.encoder(x[i : i + 256])) for i in range(0, len(x), 256)])
        return to_uint8(out)

    def _draw(self, w: torch.Tensor) -> torch.Tensor:
        """Generator output centre-cropped to the image side."""
        out = self.generator(w)
        top = (out.shape[-1] - self.side) // 2
        return out[..., top : top + self.side, top : top + self.side]

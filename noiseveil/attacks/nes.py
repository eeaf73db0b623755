"""The α of RIC's Theorem 6.1 (Appendix A, eq. 21 and 22), estimated by NES.

H_i(r) maps a random noisy image r (8-bit units) to pixel i (8-bit units) of the image that
RIC recovers from a fixed ciphertext when r replaces the key's noise: r -> Φ(r) (the NAE) ->
decoder. Eq. 21 bounds the PSNR between what the right noise n and a wrong noise n' decrypt to:

    PSNR ≥ 20 log10( 255 / (ε · sqrt( Σ_i (‖∇H_i(n')‖₂ − ‖∇H_i(n)‖₂) )) ),   ε = ‖n' − n‖_∞

and calls the ε = 1 value α. The gradients are estimated with NES (eq. 22); we use antithetic
pairs, ∇H_i ≈ Σ_j v_j (H_i(r + σv_j) − H_i(r − σv_j)) / (2σz), the usual variance-reduced
form of the estimator (Ilyas et al. 2018), since the plain form of eq. 22 has no baseline.

Our reading of the appendix, stated with the number wherever it is reported: its last step of
eq. 20 replaces ∫‖∇H_i(r(t))‖ dt by a difference of two gradient norms, which is not a bound
in general, so the sum under the root can be negative; we take its absolute value. The α it
gives is a heuristic scale, not a proven bound, and the brute-force sweep measures the real
thing.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from noiseveil.crypto.keys import Key
from noiseveil.schemes.base import Ciphertext

KeyMaterial = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]  # (noise, target, pad)


@runtime_checkable
class NoiseKeyedScheme(Protocol):
    """The surface this attack probes: a scheme whose decryption is a network fed with noise
    derived from the key (RIC's learned presets). Schemes without it are out of its scope."""

    def key_material(self, ciphertext: Ciphertext, key: Key) -> KeyMaterial:
        """(noise, target, pad) that ``key`` gives ``ciphertext``, as decryption derives them."""

    def recover_from_noise(
        self, x_q: torch.Tensor, noise: torch.Tensor, target: torch.Tensor, pad: torch.Tensor | None
    ) -> torch.Tensor:
        """Decryption of one ciphertext ``x_q`` for a batch of noises, in [0, 1]."""


def _recover(
    scheme: NoiseKeyedScheme,
    x_q: torch.Tensor,
    noise: torch.Tensor,
    target: torch.Tensor,
    pad: torch.Tensor | None,
) -> torch.Tensor:
    return 255.0 * scheme.recover_from_noise(x_q, noise, target, pad)


def gradient_norms(
    scheme: NoiseKeyedScheme,
    x_q: torch.Tensor,
    key_material: KeyMaterial,
    z: int,
    sigma: float,
    seed: int,
) -> np.ndarray:
    """‖∇_r H_i(r)‖₂ for every pixel i at r = noise, from z antithetic NES pairs.

    ``key_material`` is what one key gives this ciphertext: (noise (1, C, H, W), target, pad).

    With V (z x d) the directions and Δ (z x d) the antithetic differences, ∇H_i = V^T Δ_i / (2σz),
    so ‖∇H_i‖² = Δ_i^T (V V^T) Δ_i / (2σz)²: a z x z Gram matrix, never the d x d Jacobian.
    """
    noise, target, pad = key_material
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn((z, *noise.shape[1:]), generator=gen)
    step = sigma / 255.0  # σ is in 8-bit units, the noise in [0, 1]
    plus = _recover(scheme, x_q, (noise + step * v).clamp(0, 1), target, pad).flatten(1)
    minus = _recover(scheme, x_q, (noise - step * v).clamp(0, 1), target, pad).flatten(1)
    delta = (plus - minus).double()
    vf = v.flatten(1).double()
    gram = vf @ vf.T
    squared = ((gram @ delta) * delta).sum(0) / (2.0 * sigma * z) ** 2
    return squared.clamp(min=0).sqrt().numpy()


def estimate_alpha(
    scheme: NoiseKeyedScheme,
    x_q: torch.Tensor,
    right: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    wrong: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    z: int = 50,
    sigma: float = 1.0,
    seed: int = 0,
) -> float:
    """α (dB) of eq. 21 at ε = 1 for one ciphertext; ``right``/``wrong``: (noise, target, pad)."""
    g_right = gradient_norms(scheme, x_q, right, z, sigma, seed)
    g_wrong = gradient_norms(scheme, x_q, wrong, z, sigma, seed + 1)
    total = abs(float((g_wrong - g_right).sum()))
    return float(20.0 * np.log10(255.0 / np.sqrt(total))) if total > 0 else float("inf")

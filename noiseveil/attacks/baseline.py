"""What an attacker gets from the label alone: the bar every attack must clear to count as a leak."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from noiseveil.attacks.base import Attack
from noiseveil.schemes.base import Ciphertext, Scheme


class LabelOnlyBaseline(Attack):
    """Guess the mean image of the predicted class, from the attacker's own images of the domain.

    The cloud learns the label by design, so any reconstruction no better than this one
    reveals nothing beyond the label. The class mean maximises expected PSNR among guesses that
    depend on the label only (it minimises the expected squared error).
    """

    name = "label-only"
    threat = "knows the predicted label and has images of the same domain"

    def __init__(self, scheme: Scheme, aux_images: np.ndarray, aux_labels: np.ndarray) -> None:
        super().__init__(scheme)
        if len(aux_images) == 0:  # a mean of nothing is NaN, which scores as a near-zero SSIM
            raise ValueError("the label-only baseline needs at least one image of the domain")
        self.aux_images, self.aux_labels = aux_images, np.asarray(aux_labels)
        self.means: dict[int, np.ndarray] = {}

    def fit(self) -> dict:
        overall = self.aux_images.astype(np.float64).mean(0)
        self.means = {-1: overall}
        for label in np.unique(self.aux_labels):
            self.means[int(label)] = self.aux_images[self.aux_labels == label].astype(np.float64).mean(0)
        return {"classes": len(self.means) - 1, "aux_images": len(self.aux_images)}

    def reconstruct(self, ciphertexts: Sequence[Ciphertext], labels: np.ndarray) -> np.ndarray:
        if not self.means:
            self.fit()
        guesses = [self.means.get(int(label), self.means[-1]) for label in labels]
        return np.clip(np.rint(np.stack(guesses)), 0, 255).astype(np.uint8)

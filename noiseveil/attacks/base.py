"""The one call shape every attack shares (after torchattacks: one small class per attack).

An attack is built from what its threat model lets the attacker know (the scheme's public
algorithm and networks, images of the same domain, known pairs...), may train something in
:meth:`Attack.fit`, and is then called on the ciphertexts the cloud sees, with the labels the
cloud learns by design::

    attack = ITNAttack(scheme, aux_images)      # knowledge
    attack.fit()                                # the attacker's own compute
    guesses = attack(ciphertexts, labels)       # uint8 (N, H, W, C) reconstructions

:func:`noiseveil.attacks.score` compares the guesses with the plaintexts; an attack counts as
a leak only where it beats :class:`~noiseveil.attacks.baseline.LabelOnlyBaseline`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from noiseveil.schemes.base import Ciphertext, Scheme


class Attack(ABC):
    """Reconstruct plaintexts from ciphertexts (and the labels the cloud predicted)."""

    name: ClassVar[str]
    threat: ClassVar[str]  # one line: what the attacker knows

    def __init__(self, scheme: Scheme) -> None:
        self.scheme = scheme

    def fit(self) -> dict[str, Any]:
        """Train whatever the attack needs; returns a report (attacks with nothing to train: {})."""
        return {}

    @abstractmethod
    def reconstruct(self, ciphertexts: Sequence[Ciphertext], labels: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) guesses of the plaintexts."""

    def __call__(self, ciphertexts: Sequence[Ciphertext], labels: np.ndarray) -> np.ndarray:
        if len(ciphertexts) != len(labels):
            raise ValueError(f"{len(ciphertexts)} ciphertexts but {len(labels)} labels")
        return self.reconstruct(ciphertexts, np.asarray(labels))


def pixels_of(ciphertexts: Sequence[Ciphertext]) -> np.ndarray:
    """The public ciphertext pixels, uint8 (N, H, W, C)."""
    return np.stack([ct.pixels for ct in ciphertexts])

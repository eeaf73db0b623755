"""Feature-reconstruction attack on block-wise encryption (after Chang et al.'s FR-Attack).

Block-wise schemes (EtC) apply one transform to every pixel of a block, so features built from
pixel relations inside a block survive. For EtC's steps (section II-B of the EtC paper):

- colour shuffle (K4) permutes R, G, B: the channel mean g = (R + G + B) / 3 is unchanged;
- negative-positive (K3) maps every channel p -> 255 - p, so g -> 255 - g: a block's grey
  content is known up to its polarity. The attack picks each block's polarity, in raster
  order, to make its borders continue those of the blocks above and to the left (the
  correlation of neighbouring pixels); the first block is taken darker than mid-grey, so the
  whole image may come out inverted;
- rotation/flip (K2) and block permutation (K1) move pixels but keep each block's content.

The attack returns that grey image, block by block where the ciphertext stands: it
recovers every invariant of the steps that act inside a block (edges, textures, up to
polarity) but not where a block belongs or which way it faces. This is our implementation of
the FR-Attack idea for EtC (Chang, Case et al., "Attacks on image encryption schemes for
privacy-preserving deep neural networks", 2020); ciphertext-only, nothing to train.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from noiseveil.attacks.base import Attack, pixels_of
from noiseveil.schemes.base import Ciphertext


class FeatureReconstructionAttack(Attack):
    """Shuffle- and negative-positive-invariant features of each block (ciphertext only)."""

    name = "fr"
    threat = "ciphertext only"

    def reconstruct(self, ciphertexts: Sequence[Ciphertext], labels: np.ndarray) -> np.ndarray:
        y = pixels_of(ciphertexts).astype(np.float64)
        n, h, w, c = y.shape
        b = _block_size(ciphertexts, h, w)
        grey = y.mean(axis=3).reshape(n, h // b, b, w // b, b).transpose(0, 1, 3, 2, 4).copy()
        _choose_polarities(grey)
        grey = grey.transpose(0, 1, 3, 2, 4).reshape(n, h, w, 1)
        return np.clip(np.rint(np.broadcast_to(grey, y.shape)), 0, 255).astype(np.uint8)


def _choose_polarities(blocks: np.ndarray) -> None:
    """In place on (N, rows, cols, B, B) grey blocks: flip each block where that continues its
    already-decided upper and left neighbours better (sum of absolute border differences)."""
    rows, cols = blocks.shape[1:3]
    for r in range(rows):
        for c in range(cols):
            block = blocks[:, r, c]
            cost = np.zeros((len(blocks), 2))  # as is, flipped
            for candidate, flip in enumerate((False, True)):
                edge = 255.0 - block if flip else block
                if r > 0:
                    cost[:, candidate] += np.abs(edge[:, 0, :] - blocks[:, r - 1, c, -1, :]).sum(1)
                if c > 0:
                    cost[:, candidate] += np.abs(edge[:, :, 0] - blocks[:, r, c - 1, :, -1]).sum(1)
                if r == 0 and c == 0:
                    cost[:, candidate] = edge.mean(axis=(1, 2)) > 127.5
            flip = cost[:, 1] < cost[:, 0]
            blocks[flip, r, c] = 255.0 - block[flip]


def _block_size(ciphertexts: Sequence[Ciphertext], h: int, w: int) -> int:
    """The public block size of block-wise ciphertexts; the whole image for other schemes."""
    sizes = {ct.fields.get("block_size") for ct in ciphertexts}
    if len(sizes) != 1 or None in sizes:
        return h if h == w else 1
    b = int(sizes.pop())
    return b if h % b == 0 and w % b == 0 else 1

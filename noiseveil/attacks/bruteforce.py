"""Brute-force attack and key sensitivity (RIC section 6.1, Fig. 8, Theorem 6.1).

The attacker has the ciphertexts and the public algorithm and networks, and tries keys. A tag
check would reject every wrong key at once, so the attacker skips it
(:func:`noiseveil.hazmat.decrypt_unverified`) and looks at what each guess
decrypts to. Two kinds of guesses:

- random keys (the paper samples 200 seeds of its 2^32 key space; ours are 256-bit keys);
- keys one bit away from the right one: key sensitivity, since HKDF and ChaCha20 should make
  a neighbouring key as useless as a random one.

Key space: a noiseveil key is 256 random bits (HKDF-SHA256 then ChaCha20 derive everything
from it), so exhaustive search needs 2^255 decryptions on average.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from noiseveil.attacks.base import Attack
from noiseveil.attacks.inverse import attacker_key
from noiseveil.crypto.keys import Key
from noiseveil.data import to_uint8
from noiseveil.hazmat import decrypt_unverified
from noiseveil.schemes.base import Ciphertext, Scheme, SchemeError


class BruteForceAttack(Attack):
    """Decrypt with guessed keys; ``reconstruct`` returns what the first guess decrypts to."""

    name = "brute-force"
    threat = "ciphertexts and the public algorithm and networks; guesses keys"

    def __init__(
        self, scheme: Scheme, guesses: Sequence[Key] | None = None, n_keys: int = 200, seed: int = 0
    ):
        super().__init__(scheme)
        self.guesses = (
            list(guesses) if guesses is not None else [attacker_key(scheme, seed, i) for i in range(n_keys)]
        )
        if not self.guesses:
            raise ValueError("a brute-force attack needs at least one key guess")

    @classmethod
    def one_bit_away(cls, scheme: Scheme, key: Key, bits: Sequence[int]) -> BruteForceAttack:
        """Guesses that differ from the right ``key`` in exactly one of ``bits`` (keys that are
        bit strings only)."""
        if not key.secret_bits or not hasattr(key, "with_bit_flipped"):
            raise SchemeError(f"a {key.kind} key is not a bit string: no key is one bit away")
        return cls(scheme, [key.with_bit_flipped(b) for b in bits])

    def decrypt_with(self, ciphertexts: Sequence[Ciphertext], key: Key) -> np.ndarray:
        return to_uint8(decrypt_unverified(self.scheme, ciphertexts, key))

    def reconstruct(self, ciphertexts: Sequence[Ciphertext], labels: np.ndarray) -> np.ndarray:
        return self.decrypt_with(ciphertexts, self.guesses[0])

    def sweep(self, ciphertexts: Sequence[Ciphertext]) -> list[np.ndarray]:
        """What every guess decrypts the ciphertexts to, one uint8 batch per guess."""
        return [self.decrypt_with(ciphertexts, key) for key in self.guesses]

"""Hazardous materials: decryption that skips authentication. For attacks and tests only.

Everything else in noiseveil verifies before it decrypts (:meth:`Scheme.decrypt
<noiseveil.schemes.base.Scheme.decrypt>` checks the HMAC tag, lossless RIC's payload its
Poly1305 tag): a wrong key or a modified file raises, and nothing comes back. An attacker who
guesses keys skips those checks and looks at what each guess yields; measuring that (the
brute-force attack, :mod:`noiseveil.attacks.bruteforce`) is the one use of this module, as in
pyca/cryptography's ``hazmat`` layer. Never recover a user's data through it:
``tests/test_layout.py`` checks that only ``noiseveil.attacks`` and the tests import it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from noiseveil.crypto.keys import AEAD_TAG_BYTES, Key, SecretKey
from noiseveil.exceptions import SchemeError
from noiseveil.io.png import Ciphertext
from noiseveil.schemes.base import Scheme, SealedPayload, ciphertext_tensor


def open_payload_unauthenticated(key: SecretKey, nonce: bytes, use: str, sealed: bytes) -> bytes:
    """What :func:`~noiseveil.crypto.keys.seal_payload`'s ChaCha20 layer gives under ``key``
    WITHOUT checking the tag: the view of an attacker who skips authentication (RFC 8439: the
    payload starts at block 1)."""
    stream_key = key.derive(f"noiseveil/{use}", salt=nonce)
    counter_and_nonce = (1).to_bytes(4, "little") + bytes(12)
    decryptor = Cipher(algorithms.ChaCha20(stream_key, counter_and_nonce), mode=None).decryptor()
    return decryptor.update(sealed[:-AEAD_TAG_BYTES])


def decrypt_unverified(scheme: Scheme, ciphertexts: Sequence[Ciphertext], key: Key) -> torch.Tensor:
    """What ``key`` decrypts the ciphertexts to WITHOUT checking any tag, as floats (N, C, H, W)
    in [0, 1]: the image if the key is right, else whatever a wrong key yields. A scheme whose
    ciphertexts carry a sealed payload (lossless RIC) gives, for a wrong key, the payload's
    unauthenticated ChaCha20 decryption laid out in the image's shape."""
    scheme.check_key_kind(key)
    if all(scheme.sealed_payload(ct) is None for ct in ciphertexts):
        # the scheme's own decryption arithmetic, which Scheme.decrypt runs only once verified
        return scheme._decrypt(ciphertext_tensor(ciphertexts), [ct.fields for ct in ciphertexts], key)
    images = [_sealed_view(scheme, ct, key) for ct in ciphertexts]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


def _sealed_view(scheme: Scheme, ct: Ciphertext, key: Key) -> np.ndarray:
    try:
        return scheme.decrypt_images([ct], key)[0]  # the right key: the image itself
    except SchemeError:
        payload: SealedPayload = scheme.sealed_payload(ct)
        raw = np.frombuffer(
            open_payload_unauthenticated(key, payload.nonce, payload.use, payload.sealed), np.uint8
        )
        return np.resize(raw, payload.shape)

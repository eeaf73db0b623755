"""Key material: 256-bit secret keys, HKDF sub-keys, keyed noise and authentication tags."""

from noiseveil.crypto.keys import (
    KEY_BYTES,
    KeyFileError,
    SecretKey,
    keyed_uniform,
    new_nonce,
)

__all__ = ["KEY_BYTES", "KeyFileError", "SecretKey", "keyed_uniform", "new_nonce"]

"""File formats: the ciphertext PNG."""

from noiseveil.io.png import CiphertextFileError, read_ciphertext, write_ciphertext, write_image

__all__ = ["CiphertextFileError", "read_ciphertext", "write_ciphertext", "write_image"]

"""SHA-256 of files and of networks' weights: how weights are bound and verified everywhere."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn


def sha256_bytes(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def state_digest(module: nn.Module) -> str:
    """SHA-256 of a model's weights (names, dtypes, shapes and bytes of its state dict, sorted):
    what a ciphertext records to bind the network its decryption needs."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()

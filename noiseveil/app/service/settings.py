"""What ``noiseveil serve`` is told: where the cloud keeps its data, which models it serves,
and how large an upload may be."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServiceSettings:
    data_dir: Path
    database_url: str | None = None  # default: SQLite in data_dir
    models: tuple[str, ...] | None = None  # the scheme models served; default: every shipped one
    # classifiers offered for TransNet's training protocol; default: those of the served
    # protocol-trained models (their ψ)
    protocol_classifiers: tuple[str, ...] | None = None
    max_upload_bytes: int = 64 << 20  # a 12-megapixel RGB ciphertext is 36 MB

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(Path(self.data_dir) / 'noiseveil.db').resolve()}"

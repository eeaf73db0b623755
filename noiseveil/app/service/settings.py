"""What ``noiseveil serve`` is told: where the cloud keeps its data, which models it serves,
and how large an upload may be."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
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
    # Concurrent uploads share one forward pass per model and one commit (batching.py): at most
    # this many images or rows, waiting at most batch_wait seconds after the first for others.
    classify_batch: int = 64
    commit_batch: int = 256
    batch_wait: float = 0.002

    def to_json(self) -> str:
        fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        return json.dumps(fields)

    @classmethod
    def from_json(cls, text: str) -> ServiceSettings:
        fields = json.loads(text)
        for name in ("models", "protocol_classifiers"):
            if fields[name] is not None:
                fields[name] = tuple(fields[name])
        return cls(**{**fields, "data_dir": Path(fields["data_dir"])})

    @property
    def url(self) -> str:
        return self.database_url or f"sqlite:///{(Path(self.data_dir) / 'noiseveil.db').resolve()}"

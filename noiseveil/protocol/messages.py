"""The messages of TransNet's two-party training protocol, and their one wire format.

Only these cross the boundary between the user (who holds the plaintexts and h_θ) and the
cloud (who holds the classifier ψ):

    user  ── LossRequest(protected images h_θ(x), labels) ──────────────▶  cloud
    user  ◀─ LossReply(L_class, ∂L_class/∂(protected images), correct) ──  cloud
    user  ── ClassifyRequest(protected images) ─────────────────────────▶  cloud
    user  ◀─ ClassifyReply(labels) ─────────────────────────────────────  cloud

Every transport (in-process or HTTP) sends the same bytes: an ``.npz`` archive of named
arrays with a format tag, read back without pickle, so nothing but these arrays (no Python
object, no network weight, no autograd graph) can travel. A message of any other shape is
refused with :class:`ProtocolError`.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, fields
from typing import ClassVar, TypeVar

import numpy as np

from noiseveil.exceptions import NoiseveilError

FORMAT = "noiseveil-transnet-protocol/1"
MAX_BATCH = 1024  # images per message: a bound on what one request may make the cloud compute


class ProtocolError(NoiseveilError):
    """A message that is not one of the protocol's, or whose arrays are malformed."""


M = TypeVar("M", bound="Message")


@dataclass(frozen=True)
class Message:
    """A protocol message: named NumPy arrays with fixed dtypes (see each subclass)."""

    kind: ClassVar[str]
    dtypes: ClassVar[dict[str, str]]

    def to_bytes(self) -> bytes:
        blob = io.BytesIO()
        arrays = {f.name: np.asarray(getattr(self, f.name), dtype=self.dtypes[f.name]) for f in fields(self)}
        np.savez(blob, format=np.array(FORMAT), kind=np.array(self.kind), **arrays)
        return blob.getvalue()

    @classmethod
    def from_bytes(cls: type[M], data: bytes) -> M:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ProtocolError(f"not a protocol message ({exc})") from None
        if str(arrays.pop("format", "")) != FORMAT:
            raise ProtocolError(f"not a {FORMAT} message")
        kind = str(arrays.pop("kind", ""))
        if kind != cls.kind:
            raise ProtocolError(f"expected a {cls.kind} message, got {kind or 'an untyped one'}")
        if set(arrays) != set(cls.dtypes):
            raise ProtocolError(f"{cls.kind}: fields {sorted(arrays)}, expected {sorted(cls.dtypes)}")
        for name, dtype in cls.dtypes.items():
            if arrays[name].dtype != np.dtype(dtype):
                raise ProtocolError(f"{cls.kind}.{name}: dtype {arrays[name].dtype}, expected {dtype}")
        message = cls(**{name: arrays[name] for name in cls.dtypes})
        message.validate()
        return message

    def validate(self) -> None:
        """Shapes and values a message of this kind must have."""


def _check_images(kind: str, images: np.ndarray) -> None:
    if images.ndim != 4 or not 1 <= len(images) <= MAX_BATCH:
        raise ProtocolError(
            f"{kind}: images must be (N, C, H, W) with 1 <= N <= {MAX_BATCH}, got {images.shape}"
        )
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise ProtocolError(f"{kind}: image values must be finite and in [0, 1]")


@dataclass(frozen=True)
class LossRequest(Message):
    """Protected images h_θ(x) (float32 in [0, 1], NCHW) and their labels."""

    protected: np.ndarray
    labels: np.ndarray
    kind: ClassVar[str] = "loss-request"
    dtypes: ClassVar[dict[str, str]] = {"protected": "float32", "labels": "int64"}

    def validate(self) -> None:
        _check_images(self.kind, self.protected)
        if self.labels.shape != (len(self.protected),) or (self.labels < 0).any():
            raise ProtocolError(f"{self.kind}: one non-negative label per image")


@dataclass(frozen=True)
class LossReply(Message):
    """L_class of the batch (mean cross-entropy), its gradient with respect to the protected
    images, and how many of them ψ classified correctly."""

    loss: np.ndarray  # float64 scalar
    grad: np.ndarray  # float32, the request's shape
    correct: np.ndarray  # int64 scalar
    kind: ClassVar[str] = "loss-reply"
    dtypes: ClassVar[dict[str, str]] = {"loss": "float64", "grad": "float32", "correct": "int64"}

    def validate(self) -> None:
        if self.loss.shape != () or self.correct.shape != () or self.grad.ndim != 4:
            raise ProtocolError(f"{self.kind}: a scalar loss and count, and an (N, C, H, W) gradient")


@dataclass(frozen=True)
class ClassifyRequest(Message):
    """Protected images to classify."""

    protected: np.ndarray
    kind: ClassVar[str] = "classify-request"
    dtypes: ClassVar[dict[str, str]] = {"protected": "float32"}

    def validate(self) -> None:
        _check_images(self.kind, self.protected)


@dataclass(frozen=True)
class ClassifyReply(Message):
    """ψ's label for each protected image."""

    labels: np.ndarray
    kind: ClassVar[str] = "classify-reply"
    dtypes: ClassVar[dict[str, str]] = {"labels": "int64"}

    def validate(self) -> None:
        if self.labels.ndim != 1:
            raise ProtocolError(f"{self.kind}: one label per image")

"""RIC, lossless preset: exact decryption that runs no neural network and no float arithmetic.

Beyond Liu et al. (ACM TOMM 2024): the paper's ciphertext x' = (1 − λ)·E(x) + λ·n_adv needs
the key holder to regenerate n_adv by re-running an attack and to run a decoder D, so its
recovery is approximate and rests on floating point repeating itself. Here each 8-bit
ciphertext sample is split into two integer parts, with L = 2^b::

    x (uint8) ─WebP lossless─► bitstream ─┐
              (if it does not fit: drop    ├─ [version, dropped bits, length | bitstream | 0…0]
               low bits, state the PSNR)   │
    key, nonce ─HKDF─► ChaCha20-Poly1305 ──┴─► sealed bytes (exactly the capacity, uniform)
                                                  │ b bits per sample
                                                  ▼
                                      d ∈ [0, L)  (the image, encrypted: "digits")
    key, nonce ─► keyed start a₀ ─Φ: attack C on L·a + d, a ∈ [0, 256/L) integer, straight-
                                     through rounding, stop when C says ŷ = C(x) by a margin
                                                  │
                                      pixel = L·a + d          (8-bit PNG)
    cloud:  ỹ = argmax C(pixel / 255) = ŷ       (the unmodified plaintext classifier)
    user:   d = pixel mod L ─► bytes ─► AEAD open (verifies) ─► decode ─► x, bit for bit

The NAE a is the high part of every sample (share (256 − L)/256 of the range): a discrete
adversarial pattern. Since the data provider seals the payload before attacking, Φ attacks
the exact ciphertext the cloud will see (no expectation over d is needed), and decryption
never needs a: it depends on the key, the nonce and integer arithmetic only. d is AEAD
output, so it is uniform whatever the image; a depends only on digits, labels and the key.
Φ starts each image from the high parts that brought an earlier image of its label home under
the same key (``WarmStarts``): most images are then accepted on the first forward pass, and
ciphertexts of one label often share their high parts (label equality, which the cloud
learns anyway, becomes visible without the classifier; ``warm_start=False`` turns it off).

L is chosen per model (``digit_bits``), not per image, so the digit split reveals nothing
about an image. The rare image that does not fit falls back to dropping its k lowest bits
before compressing; the header then says "lossy" with its PSNR (that one image is thereby
marked as hard to compress: the only thing the file reveals about it).
"""

from __future__ import annotations

import math
import os
import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from noiseveil.crypto.keys import (
    AEAD_TAG_BYTES,
    PayloadError,
    SecretKey,
    keyed_uniform,
    new_nonce,
    open_payload,
    seal_payload,
)
from noiseveil.data.tensors import to_uint8
from noiseveil.io.codecs import LosslessCodecError, lossless_decode, lossless_encode
from noiseveil.schemes.base import (
    Capabilities,
    Ciphertext,
    CloudModel,
    Payload,
    Scheme,
    SchemeError,
    SealedPayload,
    TrainedScheme,
    TrainingPlan,
    plaintext_cloud_fields,
    resolve_classifier,
)
from noiseveil.schemes.nae import DiscreteNAEConfig, WarmStarts, discrete_nae

PAYLOAD_VERSION = 1  # one WebP bitstream
STRIPS_VERSION = 2  # the image in row strips, a bitstream each (their count and sizes first)
STRIP_SAMPLES = 1 << 22  # samples per strip, about: a 12-megapixel RGB photo is 9 strips
# Samples attacked in one call (a 12-megapixel RGB photo is 36 M): see LosslessRICScheme._encrypt.
ATTACK_SAMPLES = 1 << 22
_PAYLOAD_HEADER = struct.Struct("<BBI")  # version, low bits dropped, bitstream length
_PAYLOAD_USE = "ric-lossless/payload"


if TYPE_CHECKING:
    from noiseveil.data import ImageDataset


def capacity_bytes(shape: tuple[int, int, int], digit_bits: int) -> int:
    """Bytes the low parts of an image of ``shape`` (H, W, C) carry at ``digit_bits`` per sample."""
    h, w, c = shape
    return h * w * c * digit_bits // 8


def _group(digit_bits: int) -> tuple[int, int, type]:
    """Digits and bytes of the smallest whole group (lcm(8, b) bits), and an integer type for it."""
    bits = math.lcm(8, digit_bits)
    return bits // digit_bits, bits // 8, np.uint32 if bits <= 32 else np.uint64


def bytes_to_digits(data: bytes, samples: int, digit_bits: int) -> np.ndarray:
    """``data`` as ``samples`` digits of ``digit_bits`` bits (MSB first); spare bits random.

    Digits and bytes are cut in whole groups of lcm(8, b) bits (b = 6: 3 bytes, 4 digits), each
    read as one big-endian integer, a column at a time (a 12-megapixel photo in tens of ms)."""
    b = digit_bits
    if len(data) * 8 > samples * b:
        raise ValueError(f"{len(data)} bytes do not fit {samples} digits of {b} bits")
    per_digits, per_bytes, kind = _group(b)
    groups = -(-samples // per_digits)
    # Spare bits (fewer than 8, plus the last group's unused digits) are random, so that every
    # digit stays uniform; the digits past ``samples`` are dropped.
    spare = np.random.default_rng().integers(0, 256, groups * per_bytes - len(data), dtype=np.uint8)
    raw = np.concatenate([np.frombuffer(data, dtype=np.uint8), spare]).reshape(groups, per_bytes)
    value = np.zeros(groups, dtype=kind)
    for j in range(per_bytes):
        value <<= kind(8)
        value |= raw[:, j]
    digits = np.empty((groups, per_digits), dtype=np.uint8)
    for k in range(per_digits):
        digits[:, k] = (value >> kind(b * (per_digits - 1 - k))) & kind((1 << b) - 1)
    return digits.reshape(-1)[:samples]


def digits_to_bytes(digits: np.ndarray, digit_bits: int, length: int) -> bytes:
    """Inverse of :func:`bytes_to_digits`: the first ``length`` bytes the digits carry."""
    b = digit_bits
    per_digits, per_bytes, kind = _group(b)
    # only the groups that hold the first ``length`` bytes: a photo's payload fills a fraction
    # of its digits' capacity, and the rest is random padding not worth unpacking
    flat = digits.reshape(-1)[: -(-length // per_bytes) * per_digits]
    groups = -(-len(flat) // per_digits)
    if groups * per_digits != len(flat):
        flat = np.concatenate([flat, np.zeros(groups * per_digits - len(flat), dtype=flat.dtype)])
    table = flat.reshape(groups, per_digits)
    value = np.zeros(groups, dtype=kind)
    for k in range(per_digits):
        value <<= kind(b)
        value |= table[:, k]
    raw = np.empty((groups, per_bytes), dtype=np.uint8)
    for j in range(per_bytes):
        raw[:, j] = (value >> kind(8 * (per_bytes - 1 - j))) & kind(0xFF)
    return raw.reshape(-1)[:length].tobytes()


def _dequantise(coarse: np.ndarray, dropped: int) -> np.ndarray:
    """Back to 8 bits after dropping ``dropped`` low bits: the middle of each bin."""
    if dropped == 0:
        return coarse
    return np.minimum((coarse.astype(np.uint16) << dropped) + (1 << (dropped - 1)), 255).astype(np.uint8)


def _recovery_psnr(recovered: np.ndarray, image: np.ndarray, dropped: int) -> float:
    """inf for an exact recovery, else its PSNR (the figure the header states)."""
    if dropped == 0:
        return float("inf")
    from noiseveil.metrics import psnr  # scikit-image: loaded only for the rare lossy image

    return float(psnr(recovered[None], image[None])[0])


@dataclass(frozen=True)
class PackedImage:
    """The payload of one image before sealing, and what recovering it will give."""

    plaintext: bytes
    dropped_bits: int
    psnr_db: float  # inf when exact


def strips_of(shape: tuple[int, int, int]) -> list[slice]:
    """Row ranges an image is compressed in: one for up to :data:`STRIP_SAMPLES` samples, else
    strips of about that many, compressed and decompressed in parallel threads (WebP lossless
    runs on one core; a 12-megapixel photo decodes about twice as fast on two)."""
    h, w, c = shape
    n = max(1, -(-h * w * c // STRIP_SAMPLES))
    rows = -(-h // n)
    return [slice(top, min(top + rows, h)) for top in range(0, h, rows)]


def _map(fn, items: list) -> list:
    if len(items) == 1:
        return [fn(items[0])]
    with ThreadPoolExecutor(max_workers=min(len(items), os.cpu_count() or 1)) as pool:
        return list(pool.map(fn, items))


def _compressed(image: np.ndarray, fast: bool) -> tuple[int, bytes]:
    """The payload format and body of ``image``: one bitstream (format 1), or its strips'
    count and sizes followed by their bitstreams (format 2)."""
    parts = _map(lambda rows: lossless_encode(image[rows], fast=fast), strips_of(image.shape))
    if len(parts) == 1:
        return PAYLOAD_VERSION, parts[0]
    return STRIPS_VERSION, b"".join([struct.pack(f"<H{len(parts)}I", len(parts), *map(len, parts)), *parts])


def pack_image(image: np.ndarray, capacity: int) -> PackedImage:
    """Compress ``image`` (H, W, C) uint8 into exactly ``capacity − tag`` bytes, losslessly if it fits."""
    room = capacity - AEAD_TAG_BYTES - _PAYLOAD_HEADER.size
    attempts = [(0, True)] + [(dropped, False) for dropped in range(8)]  # fast first, then best
    for dropped, fast in attempts:
        coarse = image >> dropped if dropped else image
        version, body = _compressed(coarse, fast)
        if len(body) <= room:
            header = _PAYLOAD_HEADER.pack(version, dropped, len(body))
            plaintext = b"".join([header, body, bytes(room - len(body))])
            return PackedImage(
                plaintext, dropped, _recovery_psnr(_dequantise(coarse, dropped), image, dropped)
            )
    raise SchemeError(f"an image of {image.shape} does not fit {capacity} bytes even at 1 bit per sample")


def unpack_image(plaintext: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """Inverse of :func:`pack_image`."""
    version, dropped, length = _PAYLOAD_HEADER.unpack_from(plaintext)
    if (
        version not in (PAYLOAD_VERSION, STRIPS_VERSION)
        or dropped > 7
        or length > len(plaintext) - _PAYLOAD_HEADER.size
    ):
        raise SchemeError("the decrypted payload is malformed")
    body = plaintext[_PAYLOAD_HEADER.size : _PAYLOAD_HEADER.size + length]
    rows = [slice(0, shape[0])]
    parts = [body]
    if version == STRIPS_VERSION:
        rows = strips_of(shape)
        (count,) = struct.unpack_from("<H", body)
        if count != len(rows):
            raise SchemeError("the decrypted payload is malformed")
        sizes = struct.unpack_from(f"<{count}I", body, 2)
        ends = np.cumsum([2 + 4 * count, *sizes]).tolist()
        parts = [body[a:b] for a, b in zip(ends[:-1], ends[1:], strict=True)]
    try:
        decoded = _map(
            lambda item: lossless_decode(item[0], (item[1].stop - item[1].start, *shape[1:])),
            list(zip(parts, rows, strict=True)),
        )
    except LosslessCodecError as err:
        raise SchemeError(str(err)) from None
    return _dequantise(decoded[0] if len(decoded) == 1 else np.concatenate(decoded), dropped)


def calibrate_digit_bits(images: Iterable[tuple[str, np.ndarray]]) -> dict:
    """Measure the digit split b for a model from sample images, never per image: each image's
    compressed size in bits per sample, and which b lets it decrypt bit for bit. The chosen b
    is the smallest at which every sample fits (so the NAE keeps the most bits); an image of
    the model's later inputs that still does not fit takes the stated lossy fallback."""
    overhead = AEAD_TAG_BYTES + _PAYLOAD_HEADER.size
    rows = []
    for name, image in images:
        size = len(_compressed(image, fast=False)[1])  # as pack_image compresses it at best
        rows.append({"image": name, "shape": list(image.shape), "bits_per_sample": 8 * size / image.size})
        rows[-1]["fits_from_digit_bits"] = next(
            (b for b in range(1, 8) if size + overhead <= capacity_bytes(image.shape, b)), None
        )
    if not rows:
        raise SchemeError("calibration needs at least one image")
    fits = {
        b: sum(r["fits_from_digit_bits"] is not None and r["fits_from_digit_bits"] <= b for r in rows)
        for b in range(1, 8)
    }
    chosen = next((b for b in range(1, 8) if fits[b] == len(rows)), 7)
    bps = np.array([r["bits_per_sample"] for r in rows])
    return {
        "digit_bits": chosen,
        "rule": "the smallest b at which every sample image compresses into its digits",
        "images": len(rows),
        "bits_per_sample": {"mean": float(bps.mean()), "max": float(bps.max()), "min": float(bps.min())},
        "exact_share_by_digit_bits": {str(b): fits[b] / len(rows) for b in range(1, 8)},
        "per_image": rows,
    }


@dataclass
class LosslessRICScheme(Scheme):
    """RIC's ``lossless`` preset: L·a + d ciphertexts, exact classifier-free decryption (see module)."""

    classifier: CloudModel  # a loader until encryption first needs it (decryption never does)
    model_id: str
    image_shape: tuple[int, int, int] | None  # None: photos of any size (a classifier card's pipeline)
    classifier_id: str
    digit_bits: int = 7  # b: L = 2^b; the NAE gets the 8 − b high bits of every sample
    nae: DiscreteNAEConfig = field(default_factory=DiscreteNAEConfig)
    max_tries: int = 3  # a failed attack is retried with a fresh nonce and twice the steps
    stats: Counter = field(default_factory=Counter)
    warm: WarmStarts = field(default_factory=WarmStarts, repr=False, compare=False)

    name: ClassVar[str] = "ric-lossless"
    capabilities: ClassVar[Capabilities] = Capabilities()  # exact, a 256-bit key, the plaintext classifier

    def __post_init__(self) -> None:
        if not 1 <= self.digit_bits <= 7:
            raise ValueError(
                f"digit_bits must be 1..7 (the NAE needs at least one bit), got {self.digit_bits}"
            )

    @property
    def modulus(self) -> int:
        """L, the size of the low part of a sample."""
        return 1 << self.digit_bits

    def capacity(self, shape: tuple[int, int, int]) -> int:
        """Bytes an image of ``shape`` (H, W, C) carries in its digits."""
        return capacity_bytes(shape, self.digit_bits)

    def cloud_classifier(self) -> nn.Module:
        self.classifier = resolve_classifier(self.classifier)
        return self.classifier

    def _aad(self, shape: tuple[int, int, int]) -> bytes:
        h, w, c = shape
        return f"{h}x{w}x{c}/{self.digit_bits}".encode()

    # -- encryption --------------------------------------------------------------------
    def _seal_digits(self, key: SecretKey, nonce: bytes, packed: PackedImage, shape: tuple) -> torch.Tensor:
        sealed = seal_payload(key, nonce, _PAYLOAD_USE, packed.plaintext, self._aad(shape))
        h, w, c = shape
        digits = bytes_to_digits(sealed, h * w * c, self.digit_bits).reshape(h, w, c)
        return torch.from_numpy(digits).permute(2, 0, 1)

    def warm_starts(
        self, key: SecretKey, shape: tuple, targets: torch.Tensor, start: torch.Tensor
    ) -> torch.Tensor:
        """``start`` with each image whose label has warm high parts under ``key`` started there."""
        return self.warm.starts((key.key_id, shape), targets, start, 256 // self.modulus - 1)

    def _start(self, key: SecretKey, nonces: Sequence[bytes], shape: tuple) -> torch.Tensor:
        h, w, c = shape
        return torch.from_numpy(
            np.stack([keyed_uniform(key, n, "ric-lossless/start", (c, h, w)) for n in nonces])
        )

    @torch.no_grad()
    def _encrypt(
        self, images: torch.Tensor, key: SecretKey, labels: torch.Tensor | None = None
    ) -> list[tuple[np.ndarray, dict[str, str]]]:
        # A batch of large photos is attacked a few at a time: the attack's state is several
        # float copies of every sample, so memory follows the samples attacked at once.
        per_call = max(1, ATTACK_SAMPLES // images[0].numel())
        out: list[tuple[np.ndarray, dict[str, str]]] = []
        for start in range(0, len(images), per_call):
            part = slice(start, start + per_call)
            out += self._encrypt_batch(images[part], key, None if labels is None else labels[part])
        return out

    def _encrypt_batch(
        self, images: torch.Tensor, key: SecretKey, labels: torch.Tensor | None
    ) -> list[tuple[np.ndarray, dict[str, str]]]:
        plain = to_uint8(images)
        shape = tuple(plain.shape[1:])
        packed = [pack_image(image, self.capacity(shape)) for image in plain]
        classifier = self.cloud_classifier()
        targets = labels if labels is not None else classifier(images).argmax(1)
        del images  # the pixels are in ``plain``; the float copy is not needed again
        n = len(plain)
        pixels = torch.empty((n, shape[2], shape[0], shape[1]), dtype=torch.uint8)
        nonces: list[bytes] = [b""] * n
        todo = torch.arange(n)
        for attempt in range(self.max_tries):
            fresh = [new_nonce() for _ in todo]
            digits = torch.stack(
                [
                    self._seal_digits(key, nonce, packed[i], shape)
                    for i, nonce in zip(todo.tolist(), fresh, strict=True)
                ]
            )
            cfg = replace(self.nae, steps=self.nae.steps * 2**attempt)
            start = self._start(key, fresh, shape)
            if attempt == 0 and cfg.warm_start:  # a retry starts afresh from the keyed start
                start = self.warm_starts(key, shape, targets[todo], start)
            attack = discrete_nae(classifier, digits, targets[todo], start, self.modulus, cfg, self.stats)
            high, kept = attack.high, attack.kept
            if cfg.warm_start:
                self.warm.remember((key.key_id, shape), targets[todo], attack)
            pixels[todo] = (high * self.modulus + digits).to(torch.uint8)
            for i, nonce in zip(todo.tolist(), fresh, strict=True):
                nonces[i] = nonce
            self.stats["encrypted" if attempt == 0 else "retried"] += len(todo)
            todo = todo[~kept]
            if attempt == 0:
                self.stats["first_try_failed"] += len(todo)
            if len(todo) == 0:
                break
        self.stats["disagreeing"] += len(todo)  # the base class's verification reports them
        self.stats["lossy"] += sum(p.dropped_bits > 0 for p in packed)
        out = []
        for i in range(n):
            fields = {
                "nonce": nonces[i].hex(),
                "digit_bits": str(self.digit_bits),
                "classifier": self.classifier_id,
                **recovery_fields(packed[i].psnr_db),
            }
            out.append((pixels[i].permute(1, 2, 0).numpy(), fields))
        return out

    # -- decryption: integers only -------------------------------------------------------
    def decrypt_pixels(self, pixels: np.ndarray, fields: dict[str, str], key: SecretKey) -> np.ndarray:
        """One ciphertext's uint8 (H, W, C) pixels back to the uint8 image (no float, no network)."""
        payload = self._sealed(pixels, fields)
        try:
            plaintext = open_payload(key, payload.nonce, payload.use, payload.sealed, payload.aad)
        except PayloadError as err:
            raise SchemeError(str(err)) from None
        return unpack_image(plaintext, payload.shape)

    def sealed_payload(self, ciphertext: Ciphertext) -> SealedPayload:
        return self._sealed(ciphertext.pixels, ciphertext.fields)

    def _sealed(self, pixels: np.ndarray, fields: dict[str, str]) -> SealedPayload:
        """The sealed bytes the pixels' low digits carry, and the nonce and shape they were sealed for."""
        try:
            nonce = bytes.fromhex(fields["nonce"])
            bits = int(fields["digit_bits"])
        except (KeyError, ValueError) as err:
            raise SchemeError(f"ciphertext metadata is incomplete or malformed ({err})") from None
        if bits != self.digit_bits:
            raise SchemeError(
                f"ciphertext has {bits} digit bits, model {self.model_id} uses {self.digit_bits}"
            )
        shape = tuple(pixels.shape)
        digits = np.bitwise_and(pixels.reshape(-1), self.modulus - 1)
        sealed = digits_to_bytes(digits, self.digit_bits, self.capacity(shape))
        return SealedPayload(nonce, _PAYLOAD_USE, sealed, self._aad(shape), shape)

    def _decrypt_images(self, ciphertexts: Sequence[Ciphertext], key: SecretKey) -> list[np.ndarray]:
        return [self.decrypt_pixels(ct.pixels, ct.fields, key) for ct in ciphertexts]

    def _decrypt(
        self, pixels: torch.Tensor, fields: Sequence[dict[str, str]], key: SecretKey
    ) -> torch.Tensor:
        # The base class hands over [0, 1] floats of 8-bit pixels: back to uint8 is exact.
        raw = to_uint8(pixels)
        images = np.stack([self.decrypt_pixels(p, f, key) for p, f in zip(raw, fields, strict=True)])
        return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0

    @property
    def nae_settings(self) -> dict[str, Any]:
        return asdict(self.nae)

    @classmethod
    def figure(cls, entry: Mapping[str, Any]) -> str:
        if "digit_bits" not in entry:
            return super().figure(entry)
        nae_bits = 8 - entry["digit_bits"]
        return f"bit-exact recovery, {nae_bits} NAE bits/sample (classifier {entry['classifier_id']})"

    def with_nae(self, **changes) -> LosslessRICScheme:
        return replace(self, nae=self._changed_nae(self.nae, changes), stats=Counter(), warm=WarmStarts())

    # -- persistence -----------------------------------------------------------------------
    def payload(self, extra: Payload | None = None) -> Payload:
        return {
            "image_shape": self.image_shape,
            "digit_bits": self.digit_bits,
            "nae": asdict(self.nae),
            "classifier_id": self.classifier_id,
            **(extra or {}),
        }

    @classmethod
    def from_payload(
        cls, payload: Payload, model_id: str, classifier: CloudModel | None, classifier_id: str | None
    ) -> LosslessRICScheme:
        return cls(
            **plaintext_cloud_fields(payload, model_id, classifier, classifier_id),
            digit_bits=int(payload["digit_bits"]),
            nae=DiscreteNAEConfig(**payload["nae"]),
        )

    @classmethod
    def train(
        cls, plan: TrainingPlan, data: ImageDataset, classifier: CloudModel, checkpoint: Path
    ) -> TrainedScheme:
        """Nothing to train: the model is its settings and the id of its cloud classifier."""
        if plan.preset_override or plan.budget is not None:
            raise SchemeError(
                f"{plan.model_id} (lossless preset) has no networks: --preset and --steps do not apply"
            )
        if plan.key is not None:
            raise SchemeError(f"{plan.model_id} works with every key: --key applies to key-bound models")
        scheme = cls(
            classifier=classifier,
            model_id=plan.model_id,
            image_shape=plan.image_shape,
            classifier_id=plan.classifier_id,
            nae=DiscreteNAEConfig(**plan.nae),
            **plan.config,
        )
        return TrainedScheme(
            scheme,
            {"train_seconds": 0.0, **scheme.payload()},
            {"preset": plan.preset, "digit_bits": scheme.digit_bits, "train_seconds": 0.0},
        )


def recovery_fields(psnr_db: float) -> dict[str, str]:
    """The header's promise: "exact", or "lossy" with the PSNR decryption will give."""
    if psnr_db == float("inf"):
        return {"recovery": "exact"}
    return {"recovery": "lossy", "recovery_psnr": f"{psnr_db:.2f}"}

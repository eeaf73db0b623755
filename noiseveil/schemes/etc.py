"""EtC: block-wise encryption-then-compression images, classified by an isotropic network.

MaungMaung & Kiya, "Privacy-preserving image classification using an isotropic network",
IEEE MultiMedia 2022 (section II-B), after the EtC images of Kurihara et al. for photo
sharing. Every image is split into B x B blocks (B = 16 in the paper, so that blocks line up
with JPEG's 16x16 MCUs) and four keyed steps run on the blocks, in this order::

    x (N, H, W, C) uint8
      │  split into (H/B)·(W/B) blocks, row-major
      ├─ 1. K1: permute the block positions            (block i of y  <-  block K1[i] of x)
      ├─ 2. K2: rotate 0/90/180/270° then flip or not  (per block position)
      ├─ 3. K3: negative-positive p -> p ⊕ 255         (per block, same for every channel)
      ├─ 4. K4: shuffle R, G, B (one of 6 orders)      (per block; identity for grey images)
      │  reassemble the blocks
    y (N, H, W, C) uint8 ──(PNG or JPEG)──► cloud: isotropic classifier with patch size B

Decryption runs the inverse steps in the exact reverse order (4, 3, 2, 1). Every step is
a rearrangement or an XOR on 8-bit values, so decryption is bit-exact, and the cloud model
(ViT or ConvMixer, :mod:`noiseveil.classifiers.isotropic`) learns the encrypted domain
because its patch embedding sees one block per patch.

Keys. EtC uses ONE secret key for all images, since the cloud model is trained for it: there
is no nonce and encryption is deterministic (identical plaintexts give identical
ciphertexts, and identical blocks at the same position give identical encrypted blocks, a
known property of the scheme). K1..K4 come from the secret key through HKDF-SHA256, one
``use`` label per step and the image geometry as salt; each label keys a ChaCha20 keystream
read as little-endian 32-bit words, turned into uniform integers in [0, m) by rejection
sampling (no modulo bias) and into K1 by a Fisher-Yates shuffle. We do not seed a numpy
Generator: numpy does not promise that ``Generator.permutation``/``integers`` give the same
output in future releases (NEP 19), and a key must decrypt the same images for ever.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from noiseveil.classifiers.architectures import build_classifier, classifier_from_payload, freeze
from noiseveil.classifiers.training import TrainConfig, train_classifier
from noiseveil.crypto.keys import KeyStream, SecretKey
from noiseveil.data import ImageDataset
from noiseveil.data.tensors import to_tensor, to_uint8
from noiseveil.schemes.base import (
    Capabilities,
    CloudModel,
    Payload,
    Scheme,
    SchemeError,
    TrainedScheme,
    TrainingPlan,
    resolve_classifier,
)

DEFAULT_BLOCK_SIZE = 16
# The six orders of (R, G, B), lexicographic: K4 picks one by index.
COLOUR_ORDERS = np.array(list(itertools.permutations(range(3))), dtype=np.intp)
STEPS = ("block-permutation", "rotation-flip", "negative-positive", "colour-shuffle")


def public_demo_key(model_id: str) -> SecretKey:
    """The PUBLIC key a shipped EtC model was trained for: anyone can derive it.

    A shipped EtC classifier only works for the key it was trained with, so reproducing the
    paper's tables from the zoo needs that key. It is SHA-256 of a published string, so it
    protects nothing: for privacy, train a model for your own key (``noiseveil train ID
    --key FILE``).
    """
    return SecretKey.generate(seed=f"noiseveil public EtC demo key/{model_id}".encode())


# -- keys --------------------------------------------------------------------------------------
def check_block_size(image_shape: Sequence[int], block_size: int) -> None:
    """Raise a one-line :class:`SchemeError` unless B x B blocks tile the (H, W, C) image."""
    h, w, c = image_shape
    if c not in (1, 3):
        raise SchemeError(f"EtC takes grey or RGB images, got {c} channels")
    if not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise SchemeError(f"EtC block size must be a positive integer, got {block_size!r}")
    if h % block_size or w % block_size:
        raise SchemeError(f"EtC block size {block_size} does not divide the {h}x{w} image")


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class EtCKeys:
    """K1..K4 for one secret key and one image geometry; every array is indexed by block position.

    Blocks are numbered row-major over the (H/B) x (W/B) grid. ``rotation[i]`` (quarter turns
    counter-clockwise), ``flip[i]``, ``negative[i]`` and ``colour_order[i]`` apply to the block
    that step 1 put at position ``i``.
    """

    image_shape: tuple[int, int, int]  # (H, W, C)
    block_size: int
    permutation: np.ndarray  # K1: block i of the ciphertext is block permutation[i] of the image
    rotation: np.ndarray  # K2: 0..3 quarter turns
    flip: np.ndarray  # K2: horizontal flip after the rotation
    negative: np.ndarray  # K3: p -> 255 - p on every channel of the block
    colour_order: np.ndarray  # K4: (n_blocks, C); channel c of the result is channel order[c]

    @classmethod
    def derive(
        cls, key: SecretKey, image_shape: Sequence[int], block_size: int = DEFAULT_BLOCK_SIZE
    ) -> EtCKeys:
        h, w, c = (int(s) for s in image_shape)
        check_block_size((h, w, c), block_size)
        b = int(block_size)
        n = (h // b) * (w // b)
        salt = f"etc/{h}x{w}x{c}/block{b}".encode()

        def stream(step: str) -> KeyStream:
            return KeyStream(key, f"etc/{step}", salt)

        permutation = stream("block-permutation").permutation(n)
        k2 = stream("rotation-flip").integers(8, n)  # 4 rotations x 2 flips
        negative = stream("negative-positive").integers(2, n).astype(bool)
        if c == 3:
            colour_order = COLOUR_ORDERS[stream("colour-shuffle").integers(6, n)]
        else:
            colour_order = np.zeros((n, 1), dtype=np.intp)
        return cls(
            image_shape=(h, w, c),
            block_size=b,
            permutation=_frozen(permutation),
            rotation=_frozen((k2 % 4).astype(np.intp)),
            flip=_frozen(k2 >= 4),
            negative=_frozen(negative),
            colour_order=_frozen(np.ascontiguousarray(colour_order)),
        )

    @property
    def n_blocks(self) -> int:
        return len(self.permutation)


# -- the four steps, on blocks (N, n_blocks, B, B, C) ----------------------------------------------
def _to_blocks(x: np.ndarray, b: int) -> np.ndarray:
    n, h, w, c = x.shape
    return x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, -1, b, b, c)


def _from_blocks(blocks: np.ndarray, h: int, w: int) -> np.ndarray:
    n, _, b, _, c = blocks.shape
    return blocks.reshape(n, h // b, w // b, b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h, w, c)


def _permute(blocks: np.ndarray, keys: EtCKeys, inverse: bool) -> np.ndarray:
    order = np.argsort(keys.permutation) if inverse else keys.permutation
    return blocks[:, order]


def _pixel_maps(keys: EtCKeys) -> np.ndarray:
    """(n_blocks, B·B): pixel p of each rotated/flipped block is pixel map[p] of the block."""
    b = keys.block_size
    base = np.arange(b * b).reshape(b, b)
    maps = np.stack(
        [(np.rot90(base, r)[:, ::-1] if f else np.rot90(base, r)).ravel() for f in (0, 1) for r in range(4)]
    )
    return maps[keys.rotation + 4 * keys.flip]


def _rotate_flip(blocks: np.ndarray, keys: EtCKeys, inverse: bool) -> np.ndarray:
    n, nb, b, _, c = blocks.shape
    maps = _pixel_maps(keys)
    if inverse:
        maps = np.argsort(maps, axis=1)
    flat = blocks.reshape(n, nb, b * b, c)[:, np.arange(nb)[:, None], maps]
    return flat.reshape(n, nb, b, b, c)


def _negative_positive(blocks: np.ndarray, keys: EtCKeys, inverse: bool) -> np.ndarray:
    # p ⊕ 255 = 255 - p for 8-bit values (eq. 1 with L = 8); an involution, so inverse is itself.
    mask = np.where(keys.negative, 255, 0).astype(np.uint8)
    return blocks ^ mask[None, :, None, None, None]


def _shuffle_colours(blocks: np.ndarray, keys: EtCKeys, inverse: bool) -> np.ndarray:
    order = np.argsort(keys.colour_order, axis=1) if inverse else keys.colour_order
    return np.take_along_axis(blocks, order[None, :, None, None, :], axis=4)


_STEP_FUNCTIONS: dict[str, Callable[[np.ndarray, EtCKeys, bool], np.ndarray]] = {
    "block-permutation": _permute,
    "rotation-flip": _rotate_flip,
    "negative-positive": _negative_positive,
    "colour-shuffle": _shuffle_colours,
}


def _check_images(x: np.ndarray, keys: EtCKeys) -> None:
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise SchemeError(f"EtC takes uint8 images (N, H, W, C), got {got}")
    if tuple(x.shape[1:]) != keys.image_shape:
        h, w, c = keys.image_shape
        raise SchemeError(f"images are {'x'.join(map(str, x.shape[1:]))}, these EtC keys are for {h}x{w}x{c}")


def apply_step(x: np.ndarray, keys: EtCKeys, step: str, inverse: bool = False) -> np.ndarray:
    """One of :data:`STEPS` alone (or its inverse) on uint8 images (N, H, W, C)."""
    _check_images(x, keys)
    h, w, _ = keys.image_shape
    blocks = _STEP_FUNCTIONS[step](_to_blocks(x, keys.block_size), keys, inverse)
    return np.ascontiguousarray(_from_blocks(blocks, h, w))


def encrypt_blocks(x: np.ndarray, keys: EtCKeys) -> np.ndarray:
    """EtC images of uint8 images (N, H, W, C): steps 1, 2, 3, 4 of the paper."""
    _check_images(x, keys)
    h, w, _ = keys.image_shape
    blocks = _to_blocks(x, keys.block_size)
    for step in STEPS:
        blocks = _STEP_FUNCTIONS[step](blocks, keys, False)
    return np.ascontiguousarray(_from_blocks(blocks, h, w))


def decrypt_blocks(y: np.ndarray, keys: EtCKeys) -> np.ndarray:
    """The exact inverse of :func:`encrypt_blocks`: inverse steps 4, 3, 2, 1."""
    _check_images(y, keys)
    h, w, _ = keys.image_shape
    blocks = _to_blocks(y, keys.block_size)
    for step in reversed(STEPS):
        blocks = _STEP_FUNCTIONS[step](blocks, keys, True)
    return np.ascontiguousarray(_from_blocks(blocks, h, w))


# -- the Scheme ----------------------------------------------------------------------------------
@dataclass
class EtCScheme(Scheme):
    """EtC behind the common :class:`Scheme` interface.

    Encryption is deterministic (one key for every image, no nonce): identical plaintexts
    give identical ciphertexts. Images are taken on the 8-bit grid (float inputs are rounded
    to uint8 first), and decryption returns them exactly. ``classifier`` is the cloud model,
    trained on EtC images of ``trained_key`` (:meth:`fit`); :meth:`check_key` refuses other
    keys in the file pipeline, since that classifier could not classify their images.
    """

    model_id: str
    image_shape: tuple[int, int, int]
    block_size: int = DEFAULT_BLOCK_SIZE
    classifier: nn.Module | None = None
    classifier_id: str = ""
    trained_key: SecretKey | None = None
    classifier_arch: str = ""  # how to rebuild the classifier (a registered architecture)
    classifier_config: dict[str, Any] = field(default_factory=dict)

    name = "etc"
    capabilities: ClassVar[Capabilities] = Capabilities(cloud_model="ciphertexts", key_bound_to_model=True)

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(s) for s in self.image_shape)  # type: ignore[assignment]
        check_block_size(self.image_shape, self.block_size)

    def cloud_classifier(self) -> nn.Module:
        if self.classifier is None:
            raise SchemeError(
                f"EtC model {self.model_id} has no cloud classifier: train one on EtC images "
                f"(block size {self.block_size}) for this key first"
            )
        return self.classifier

    @property
    def bound_key(self) -> SecretKey | None:
        return self.trained_key

    def keys(self, key: SecretKey) -> EtCKeys:
        return EtCKeys.derive(key, self.image_shape, self.block_size)

    def encode(self, images: torch.Tensor, key: SecretKey) -> torch.Tensor:
        """EtC images of a [0, 1] batch as a [0, 1] batch: what the cloud model trains on."""
        return to_tensor(encrypt_blocks(to_uint8(images), self.keys(key)))

    def fit(
        self,
        data: ImageDataset,
        arch: str,
        config: dict[str, Any],
        train: TrainConfig,
        key: SecretKey,
        checkpoint: Any = None,
    ) -> dict[str, Any]:
        """Train the cloud's classifier (``arch``, ``config``) on EtC images of ``key``.

        Augmentation (crop, flip) runs on the plaintext before encryption. The input
        normalisation is fitted to EtC training images, which the negative-positive step
        shifts towards mid-grey.
        """
        self.check_shape(data.image_shape, "a training image")
        keys = self.keys(key)
        encrypted = encrypt_blocks(data.x_train, keys).astype(np.float32) / 255.0
        config = {
            **config,
            "in_channels": self.image_shape[2],
            "mean": encrypted.mean(axis=(0, 1, 2)).round(4).tolist(),
            "std": encrypted.std(axis=(0, 1, 2)).round(4).tolist(),
        }
        del encrypted
        model = build_classifier(arch, **config)
        report = train_classifier(model, data, train, checkpoint, encode=lambda x: self.encode(x, key))
        self.classifier, self.trained_key = freeze(model), key
        self.classifier_arch, self.classifier_config = arch, config
        return {**report, "classifier_config": config}

    @torch.no_grad()
    def _encrypt(
        self, images: torch.Tensor, key: SecretKey, labels: torch.Tensor | None = None
    ) -> list[tuple[np.ndarray, dict[str, str]]]:
        y = encrypt_blocks(to_uint8(images), self.keys(key))
        return [(y[i], {"block_size": str(self.block_size)}) for i in range(len(y))]

    @torch.no_grad()
    def _decrypt(
        self, pixels: torch.Tensor, fields: Sequence[dict[str, str]], key: SecretKey
    ) -> torch.Tensor:
        sizes = {f.get("block_size") for f in fields}
        if sizes != {str(self.block_size)}:
            got = ", ".join(sorted(str(s) for s in sizes))
            raise SchemeError(f"ciphertext block size {got} does not match this scheme's {self.block_size}")
        # pixels are uint8 / 255, so to_uint8 recovers the stored bytes exactly.
        return to_tensor(decrypt_blocks(to_uint8(pixels), self.keys(key)))

    # -- persistence -----------------------------------------------------------------------
    def payload(self, extra: Payload | None = None) -> Payload:
        """The trained cloud classifier and the (public demo) key it was trained for."""
        model = self.cloud_classifier()
        return {
            "image_shape": self.image_shape,
            "block_size": self.block_size,
            "arch": self.classifier_arch,
            "config": self.classifier_config,
            "state_dict": model.state_dict(),
            "trained_key": self.trained_key.material.hex() if self.trained_key else None,
            **(extra or {}),
        }

    @classmethod
    def from_payload(
        cls,
        payload: Payload,
        model_id: str,
        classifier: CloudModel | None = None,
        classifier_id: str | None = None,
    ) -> EtCScheme:
        """The shipped cloud model (inside the payload) unless ``classifier`` replaces it."""
        key = payload.get("trained_key")
        return cls(
            model_id=model_id,
            image_shape=tuple(payload["image_shape"]),
            block_size=int(payload["block_size"]),
            classifier=classifier_from_payload(payload)
            if classifier is None
            else resolve_classifier(classifier),
            classifier_id=classifier_id or model_id,
            trained_key=SecretKey(bytes.fromhex(key)) if key else None,
            classifier_arch=payload["arch"],
            classifier_config=payload["config"],
        )

    @classmethod
    def train(
        cls, plan: TrainingPlan, data: ImageDataset, classifier: CloudModel, checkpoint: Path
    ) -> TrainedScheme:
        """Train the cloud model on EtC images of ``plan.key`` (default: the model's public demo
        key), with the architecture, config and training settings of its plaintext twin, so the
        plain-vs-EtC comparison (the paper's Table II) changes nothing but the input."""
        if plan.preset_override:
            raise SchemeError(
                "--preset is for schemes with network presets; EtC trains its twin's architecture"
            )
        key = plan.key or public_demo_key(plan.model_id)
        if not isinstance(key, SecretKey):
            raise SchemeError(f"EtC needs a secret-256 key, not a {key.kind} one")
        recipe = plan.classifier_recipe
        train_cfg = recipe["train"] if plan.budget is None else replace(recipe["train"], epochs=plan.budget)
        scheme = cls(plan.model_id, plan.image_shape, plan.config["block_size"], classifier_id=plan.model_id)
        report = scheme.fit(data, recipe["arch"], recipe["config"], train_cfg, key, checkpoint)
        is_demo_key = key.material == public_demo_key(plan.model_id).material
        return TrainedScheme(
            scheme,
            {
                "arch": recipe["arch"],
                "block_size": scheme.block_size,
                "key_id": key.key_id,
                "parameters": sum(p.numel() for p in scheme.cloud_classifier().parameters()),
                "train": asdict(train_cfg),
                **report,
            },
            {
                "classifier_id": plan.model_id,
                "plain_twin": plan.classifier_id,
                "arch": recipe["arch"],
                "block_size": scheme.block_size,
                "key_id": key.key_id,
                "public_demo_key": is_demo_key,
                "test_accuracy": report["test_accuracy"],
                "train_seconds": report["train_seconds"],
            },
        )

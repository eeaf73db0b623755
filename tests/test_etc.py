"""EtC block-wise encryption (keys, the four steps, the Scheme API, JPEG) and the isotropic networks."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest
import torch

from noiseveil.classifiers.architectures import ARCHITECTURES, build_classifier
from noiseveil.classifiers.isotropic import ConvMixer, ViT
from noiseveil.classifiers.training import TrainConfig
from noiseveil.crypto.keys import SecretKey
from noiseveil.data import ImageDataset, load_dataset, to_tensor, to_uint8
from noiseveil.io.codecs import jpeg_roundtrip, jpeg_sizes
from noiseveil.io.png import read_ciphertext, write_ciphertext
from noiseveil.metrics import psnr
from noiseveil.schemes.base import AuthenticationError, SchemeError
from noiseveil.schemes.etc import (
    STEPS,
    EtCKeys,
    EtCScheme,
    apply_step,
    decrypt_blocks,
    encrypt_blocks,
)
from noiseveil.zoo import SCHEMES

torch.set_num_threads(1)

# Fixed keys, so that every assertion on key-dependent output is reproducible.
KEY = SecretKey(bytes(range(32)))
OTHER_KEY = SecretKey(bytes(range(1, 33)))
CIFAR = (32, 32, 3)


@cache
def cifar() -> np.ndarray:
    return load_dataset("cifar10").x_test[:64]


@cache
def mnist() -> np.ndarray:
    return load_dataset("mnist").x_test[:64]


def random_images(shape: tuple[int, int, int], n: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


# -- keys --------------------------------------------------------------------------------------
def keys_equal(a: EtCKeys, b: EtCKeys) -> bool:
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(EtCKeys))


def test_keys_are_deterministic_and_depend_on_the_key() -> None:
    a, b = EtCKeys.derive(KEY, CIFAR, 8), EtCKeys.derive(SecretKey(bytes(range(32))), CIFAR, 8)
    assert keys_equal(a, b)
    other = EtCKeys.derive(OTHER_KEY, CIFAR, 8)
    assert not keys_equal(a, other)
    assert not np.array_equal(a.permutation, other.permutation)


def test_key_shapes_and_ranges() -> None:
    k = EtCKeys.derive(KEY, (224, 224, 3), 16)
    n = 14 * 14
    assert k.n_blocks == n
    assert sorted(k.permutation.tolist()) == list(range(n))  # K1 is a permutation
    assert not np.array_equal(k.permutation, np.arange(n))
    assert set(k.rotation.tolist()) == {0, 1, 2, 3}
    assert k.flip.dtype == bool and 0 < k.flip.sum() < n
    assert k.negative.dtype == bool and 0 < k.negative.sum() < n
    assert k.colour_order.shape == (n, 3)
    assert all(sorted(row) == [0, 1, 2] for row in k.colour_order.tolist())
    assert len({tuple(row) for row in k.colour_order.tolist()}) == 6
    with pytest.raises(ValueError):
        k.permutation[0] = 1  # keys are read-only
    grey = EtCKeys.derive(KEY, (28, 28, 1), 7)
    assert grey.colour_order.shape == (16, 1) and not grey.colour_order.any()


@pytest.mark.parametrize("shape, block", [((32, 32, 3), 5), ((28, 28, 1), 8), ((32, 32, 3), 0)])
def test_block_size_must_tile_the_image(shape: tuple[int, int, int], block: int) -> None:
    with pytest.raises(SchemeError) as err:
        EtCKeys.derive(KEY, shape, block)
    assert "\n" not in str(err.value) and "block size" in str(err.value)
    with pytest.raises(SchemeError):
        EtCScheme("test-etc", shape, block)


# -- exact inverse -----------------------------------------------------------------------------
@pytest.mark.parametrize("block", [16, 8, 4, 1])
def test_roundtrip_cifar(block: int) -> None:
    x = cifar()
    k = EtCKeys.derive(KEY, CIFAR, block)
    y = encrypt_blocks(x, k)
    assert y.dtype == np.uint8 and y.shape == x.shape
    assert not np.array_equal(y, x)
    assert np.array_equal(decrypt_blocks(y, k), x)


@pytest.mark.parametrize("block", [4, 7, 14])
def test_roundtrip_grey_mnist(block: int) -> None:
    x = mnist()
    k = EtCKeys.derive(KEY, (28, 28, 1), block)
    y = encrypt_blocks(x, k)
    assert not np.array_equal(y, x)
    assert np.array_equal(decrypt_blocks(y, k), x)


@pytest.mark.parametrize("shape, block", [((32, 32, 3), 8), ((48, 64, 3), 16), ((20, 30, 1), 5)])
def test_roundtrip_random(shape: tuple[int, int, int], block: int) -> None:
    x = random_images(shape)
    k = EtCKeys.derive(KEY, shape, block)
    assert np.array_equal(decrypt_blocks(encrypt_blocks(x, k), k), x)


def test_wrong_images_are_rejected() -> None:
    k = EtCKeys.derive(KEY, CIFAR, 8)
    for bad in (random_images((28, 28, 1)), cifar().astype(np.float32), cifar()[0]):
        with pytest.raises(SchemeError) as err:
            encrypt_blocks(bad, k)
        assert "\n" not in str(err.value)


def test_another_keys_decryption_is_scrambled() -> None:
    x = cifar()
    y = encrypt_blocks(x, EtCKeys.derive(KEY, CIFAR, 8))
    wrong = decrypt_blocks(y, EtCKeys.derive(OTHER_KEY, CIFAR, 8))
    assert psnr(x, wrong).mean() < 20.0
    assert psnr(x, y).mean() < 20.0


# -- the four steps one by one -------------------------------------------------------------------
@pytest.mark.parametrize("step", STEPS)
def test_each_step_changes_the_image_and_is_undone(step: str) -> None:
    x = random_images(CIFAR)
    k = EtCKeys.derive(KEY, CIFAR, 8)
    y = apply_step(x, k, step)
    assert not np.array_equal(y, x)
    assert np.array_equal(apply_step(y, k, step, inverse=True), x)


def test_steps_do_what_the_paper_says() -> None:
    x = random_images(CIFAR)
    k = EtCKeys.derive(KEY, CIFAR, 8)

    def blocks(a: np.ndarray) -> np.ndarray:  # (N, 16, 8, 8, C), row-major block order
        return a.reshape(len(a), 4, 8, 4, 8, 3).transpose(0, 1, 3, 2, 4, 5).reshape(len(a), 16, 8, 8, 3)

    bx = blocks(x)
    by = blocks(apply_step(x, k, "block-permutation"))
    assert np.array_equal(by, bx[:, k.permutation])
    by = blocks(apply_step(x, k, "rotation-flip"))
    for i in range(16):
        expected = np.rot90(bx[:, i], k.rotation[i], axes=(1, 2))
        expected = expected[:, :, ::-1] if k.flip[i] else expected
        assert np.array_equal(by[:, i], expected)
    by = blocks(apply_step(x, k, "negative-positive"))
    for i in range(16):
        assert np.array_equal(by[:, i], 255 - bx[:, i] if k.negative[i] else bx[:, i])
    by = blocks(apply_step(x, k, "colour-shuffle"))
    for i in range(16):
        assert np.array_equal(by[:, i], bx[:, i][..., k.colour_order[i]])
    # Encryption is the four steps in the paper's order.
    y = x
    for step in STEPS:
        y = apply_step(y, k, step)
    assert np.array_equal(y, encrypt_blocks(x, k))


def test_colour_shuffle_is_identity_on_grey() -> None:
    x = mnist()[:8]
    k = EtCKeys.derive(KEY, (28, 28, 1), 4)
    assert np.array_equal(apply_step(x, k, "colour-shuffle"), x)


# -- JPEG compatibility ----------------------------------------------------------------------------
@pytest.mark.parametrize("block", [16, 8])
def test_jpeg_compatible(block: int) -> None:
    x = cifar()
    k = EtCKeys.derive(KEY, CIFAR, block)
    plain = psnr(x, jpeg_roundtrip(x, 90)[0]).mean()
    encrypted = psnr(x, decrypt_blocks(jpeg_roundtrip(encrypt_blocks(x, k), 90)[0], k)).mean()
    assert plain > 35.0
    assert encrypted > plain - 1.0  # every 8x8 DCT block lies inside one EtC block


def test_jpeg_chroma_subsampling_hurts_etc() -> None:
    """With 4:2:0 the 2x2 chroma average mixes pixels across blocks whose colours were shuffled."""
    x = cifar()
    k = EtCKeys.derive(KEY, CIFAR, 16)
    plain = psnr(x, jpeg_roundtrip(x, 90, "4:2:0")[0]).mean()
    encrypted = psnr(x, decrypt_blocks(jpeg_roundtrip(encrypt_blocks(x, k), 90, "4:2:0")[0], k)).mean()
    assert encrypted < plain - 1.0


def test_jpeg_roundtrip_rejects_unknown_subsampling() -> None:
    with pytest.raises(ValueError, match="subsampling"):
        jpeg_roundtrip(cifar()[:1], 90, "4:1:1")


# -- Scheme API ------------------------------------------------------------------------------------
def test_registered() -> None:
    assert SCHEMES["etc"] is EtCScheme
    assert ARCHITECTURES["convmixer"] is ConvMixer and ARCHITECTURES["vit"] is ViT


def test_scheme_roundtrip_through_png(tmp_path) -> None:
    x = cifar()[:8]
    scheme = EtCScheme("test-etc", CIFAR)
    cts = scheme.encrypt(to_tensor(x), KEY)
    assert len(cts) == 8
    for ct in cts:
        assert (ct.scheme, ct.model_id, ct.key_id) == ("etc", "test-etc", KEY.key_id)
        assert ct.fields == {"block_size": "16"}
        assert ct.pixels.dtype == np.uint8 and ct.pixels.shape == CIFAR
    assert np.array_equal(np.stack([ct.pixels for ct in cts]), encrypt_blocks(x, scheme.keys(KEY)))
    # Deterministic: one key for every image, no nonce.
    again = scheme.encrypt(to_tensor(x), KEY)
    assert all(np.array_equal(a.pixels, b.pixels) and a.tag == b.tag for a, b in zip(cts, again, strict=True))
    read = [read_ciphertext(write_ciphertext(tmp_path / f"{i}.png", ct)) for i, ct in enumerate(cts)]
    out = scheme.decrypt(read, KEY)
    assert out.shape == (8, 3, 32, 32)
    assert np.array_equal(to_uint8(out), x)


def test_scheme_grey() -> None:
    x = mnist()[:8]
    scheme = EtCScheme("test-etc-grey", (28, 28, 1), block_size=7)
    assert np.array_equal(to_uint8(scheme.decrypt(scheme.encrypt(to_tensor(x), KEY), KEY)), x)


def test_scheme_wrong_key_and_fields() -> None:
    scheme = EtCScheme("test-etc", CIFAR, block_size=8)
    cts = scheme.encrypt(to_tensor(cifar()[:2]), KEY)
    with pytest.raises(AuthenticationError):
        scheme.decrypt(cts, OTHER_KEY)
    resealed = [dataclasses.replace(ct, fields={"block_size": "16"}).seal(KEY) for ct in cts]
    with pytest.raises(SchemeError, match="block size 16"):
        scheme.decrypt(resealed, KEY)
    with pytest.raises(SchemeError):
        EtCScheme("test-etc", CIFAR, block_size=16).decrypt(cts, KEY)


def test_cloud_classifier() -> None:
    with pytest.raises(SchemeError) as err:
        EtCScheme("test-etc", CIFAR).cloud_classifier()
    assert "\n" not in str(err.value)
    model = ConvMixer(dim=8, depth=1)
    assert EtCScheme("test-etc", CIFAR, classifier=model).cloud_classifier() is model


@cache
def tiny_cifar() -> ImageDataset:
    d = load_dataset("cifar10")
    return ImageDataset(
        "tiny", d.x_train[:256], d.y_train[:256], d.x_test[:64], d.y_test[:64], d.classes, "t"
    )


@cache
def fitted() -> tuple[EtCScheme, dict]:
    scheme = EtCScheme("test-etc", CIFAR, block_size=16)
    config = {
        "num_classes": 10,
        "image_size": 32,
        "patch_size": 16,
        "dim": 16,
        "depth": 1,
        "heads": 2,
        "mlp_dim": 32,
    }
    report = scheme.fit(
        tiny_cifar(), "vit", config, TrainConfig(epochs=1, batch_size=32, optimizer="adamw", lr=1e-3), KEY
    )
    return scheme, report


def test_fit_trains_on_etc_images_and_binds_the_key() -> None:
    scheme, report = fitted()
    assert scheme.bound_key is KEY and scheme.demo_key() is KEY
    assert 0.0 <= report["test_accuracy"] <= 1.0 and len(report["history"]) == 1
    # the input normalisation was fitted to EtC images, not to the plaintexts
    plain_mean = tiny_cifar().x_train.reshape(-1, 3).mean(0) / 255
    etc_mean = encrypt_blocks(tiny_cifar().x_train, scheme.keys(KEY)).reshape(-1, 3).mean(0) / 255
    assert np.allclose(report["classifier_config"]["mean"], etc_mean, atol=1e-3)
    assert not np.allclose(report["classifier_config"]["mean"], plain_mean, atol=1e-3)
    scheme.check_key(KEY)
    with pytest.raises(SchemeError, match="keygen --model"):
        scheme.check_key(OTHER_KEY)


def test_payload_roundtrip_keeps_classifier_and_key() -> None:
    scheme, _ = fitted()
    again = EtCScheme.from_payload(scheme.payload({"scheme": "etc"}), "test-etc")
    assert again.bound_key.material == KEY.material and again.block_size == 16
    x = to_tensor(encrypt_blocks(cifar()[:16], scheme.keys(KEY)))
    with torch.no_grad():
        assert torch.equal(scheme.cloud_classifier()(x), again.cloud_classifier()(x))


def test_pipeline_refuses_a_key_the_cloud_model_cannot_use(tmp_path) -> None:
    from noiseveil.io.png import write_image
    from noiseveil.pipeline import encrypt_files, plan

    scheme, _ = fitted()
    write_image(tmp_path / "in" / "a.png", cifar()[0])
    with pytest.raises(SchemeError, match="classifies images of key"):
        encrypt_files(scheme, OTHER_KEY, plan(tmp_path / "in", tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    report = encrypt_files(scheme, KEY, plan(tmp_path / "in", tmp_path / "out"), progress=False)
    assert report.ok and (tmp_path / "out" / "a.png").exists()


# -- isotropic networks ----------------------------------------------------------------------------
@pytest.mark.parametrize("patch", [16, 4])
@pytest.mark.parametrize("arch", ["convmixer", "vit"])
def test_isotropic_forward(arch: str, patch: int) -> None:
    torch.manual_seed(0)
    small = {"dim": 32, "depth": 2} | ({"heads": 2, "mlp_dim": 64} if arch == "vit" else {})
    model = build_classifier(arch, patch_size=patch, **small).eval()
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.stride == (patch, patch) and first_conv.kernel_size == (patch, patch)
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_isotropic_defaults_and_grey() -> None:
    with torch.no_grad():
        assert ViT()(torch.rand(2, 3, 32, 32)).shape == (2, 10)
        assert ConvMixer(in_channels=1, dim=16, depth=1, patch_size=7)(torch.rand(2, 1, 28, 28)).shape == (
            2,
            10,
        )
        assert ViT(in_channels=1, image_size=28, patch_size=7, dim=16, depth=1, heads=2)(
            torch.rand(2, 1, 28, 28)
        ).shape == (2, 10)
    with pytest.raises(ValueError):
        ViT(image_size=32, patch_size=5)


def test_jpeg_sizes_match_the_roundtrip() -> None:
    x = cifar()[:16]
    for sub in ("4:4:4", "4:2:0"):
        assert np.array_equal(jpeg_sizes(x, 85, sub), jpeg_roundtrip(x, 85, sub)[1])

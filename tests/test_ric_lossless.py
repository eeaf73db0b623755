"""RIC's lossless preset: exact, classifier-free decryption and encryption that checks itself.

The cross-process tests run the real CLI in fresh processes with other thread counts, batch
sizes and file orders, as users do: decryption must not depend on anything the encrypting
process computed in floating point.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from noiseveil.crypto.keys import SecretKey
from noiseveil.data import load_dataset, to_tensor, to_uint8
from noiseveil.hazmat import decrypt_unverified
from noiseveil.io.png import ciphertext_from_bytes, ciphertext_to_bytes, write_image
from noiseveil.metrics import ssim
from noiseveil.schemes import LosslessRICScheme
from noiseveil.schemes.base import AuthenticationError, EncryptionError, SchemeError
from noiseveil.schemes.ric_lossless import bytes_to_digits, digits_to_bytes, pack_image, unpack_image
from noiseveil.zoo import WEIGHTS_DIR, load_scheme, read_manifest

LOSSLESS_MODELS = ["ric-cifar10", "ric-lfw", "ric-mnist"]


def test_shipped_ric_models_default_to_the_lossless_preset() -> None:
    for model_id in LOSSLESS_MODELS:
        assert read_manifest()[model_id]["preset"] == "lossless"
        assert isinstance(load_scheme(model_id), LosslessRICScheme)


@pytest.mark.parametrize("bits", range(1, 8))
def test_digits_carry_bytes_exactly(bits: int) -> None:
    rng = np.random.default_rng(bits)
    samples = 101
    capacity = samples * bits // 8
    data = rng.integers(0, 256, capacity, dtype=np.uint8).tobytes()
    digits = bytes_to_digits(data, samples, bits)
    assert digits.shape == (samples,) and digits.max() < 2**bits
    assert digits_to_bytes(digits, bits, capacity) == data
    with pytest.raises(ValueError, match="do not fit"):
        bytes_to_digits(data + b"x", samples, bits)


def test_an_image_that_does_not_fit_falls_back_to_a_stated_lossy_recovery() -> None:
    rng = np.random.default_rng(0)
    smooth = np.broadcast_to(np.arange(0, 256, 16, dtype=np.uint8)[:, None, None], (16, 16, 3)).copy()
    exact = pack_image(smooth, capacity=16 * 16 * 3 * 5 // 8)  # compresses far below 5 bits per sample
    assert exact.dropped_bits == 0 and exact.psnr_db == float("inf")
    assert np.array_equal(unpack_image(exact.plaintext, smooth.shape), smooth)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)  # noise: incompressible
    tight = pack_image(image, capacity=16 * 16 * 3 * 5 // 8)  # 5 bits per sample
    assert tight.dropped_bits >= 3 and 20.0 < tight.psnr_db < 40.0
    back = unpack_image(tight.plaintext, image.shape)
    err = np.mean((back.astype(float) - image) ** 2)
    assert abs(10 * np.log10(255**2 / err) - tight.psnr_db) < 1e-9


@pytest.mark.parametrize("model_id", LOSSLESS_MODELS)
def test_shipped_lossless_model_recovers_every_image_bit_for_bit(model_id: str) -> None:
    scheme = load_scheme(model_id)
    data = load_dataset(read_manifest()[model_id]["dataset"])
    plain = data.x_test[::97][:12]
    key = SecretKey.generate()
    cts = scheme.encrypt(to_tensor(plain), key)
    assert all(ct.fields["recovery"] == "exact" for ct in cts)
    cipher = np.stack([ct.pixels for ct in cts])
    with torch.no_grad():
        classifier = scheme.cloud_classifier()
        assert torch.equal(classifier(to_tensor(cipher)).argmax(1), classifier(to_tensor(plain)).argmax(1))
    assert ssim(cipher, plain).mean() < 0.05  # the cloud sees noise
    reread = [ciphertext_from_bytes(ciphertext_to_bytes(ct)) for ct in cts]
    assert np.array_equal(to_uint8(scheme.decrypt(reread, key)), plain)
    with pytest.raises(AuthenticationError):
        scheme.decrypt(reread, SecretKey.generate())


def test_warm_starts_bring_most_images_home_on_the_first_pass() -> None:
    """After the first batch, an image starts from the high parts that brought an earlier image
    of its label home under the same key: about one attack pass an image instead of four or
    more from the keyed start; another key shares none of them; every ciphertext still passes
    the self-check (encrypt raises otherwise)."""
    scheme = load_scheme("ric-cifar10")
    plain = to_tensor(load_dataset("cifar10").x_test[:192])
    key = SecretKey.generate()

    def passes(s: LosslessRICScheme, x: torch.Tensor, k: SecretKey) -> float:
        before = s.stats["attack_passes"]
        s.encrypt(x, k)
        return (s.stats["attack_passes"] - before) / len(x)

    first = passes(scheme, plain[:64], key)
    assert passes(scheme, plain[64:], key) < 1.5 < 2.5 < first
    assert passes(scheme, plain[64:128], SecretKey.generate()) > 2.5  # another key starts cold
    cold = scheme.with_nae(warm_start=False)
    passes(cold, plain[:64], key)
    assert passes(cold, plain[64:128], key) > 2.5
    # the cost (docs/security.md): warm, most ciphertexts of one label share their high parts
    assert _same_label_pairs_sharing_high_parts(scheme, plain[128:], key) > 0.5
    assert _same_label_pairs_sharing_high_parts(cold, plain[128:], key) == 0.0


def _same_label_pairs_sharing_high_parts(scheme: LosslessRICScheme, x: torch.Tensor, key: SecretKey) -> float:
    cts = scheme.encrypt(x, key)
    labels = scheme.plaintext_labels(x).tolist()
    high = [ct.pixels // scheme.modulus for ct in cts]
    pairs = [(i, j) for i in range(len(cts)) for j in range(i) if labels[i] == labels[j]]
    return sum(np.array_equal(high[i], high[j]) for i, j in pairs) / len(pairs)


def test_tampered_low_bits_never_decrypt_even_past_the_tag() -> None:
    scheme = load_scheme("ric-mnist")
    plain = load_dataset("mnist").x_test[:2]
    key = SecretKey.generate()
    ct = scheme.encrypt(to_tensor(plain), key)[0]
    assert np.array_equal(scheme.decrypt_pixels(ct.pixels, ct.fields, key), plain[0])
    tampered = ct.pixels.copy()
    tampered[3, 5, 0] ^= 1  # one low bit: the HMAC would refuse it; the AEAD refuses it too
    with pytest.raises(SchemeError, match="does not authenticate"):
        scheme.decrypt_pixels(tampered, ct.fields, key)
    high_only = ct.pixels.copy()
    high_only[3, 5, 0] ^= 0x80  # a high bit belongs to the NAE: the image still comes back
    assert np.array_equal(scheme.decrypt_pixels(high_only, ct.fields, key), plain[0])


def test_encryption_refuses_an_image_whose_ciphertext_would_not_come_back() -> None:
    class Broken(LosslessRICScheme):
        def decrypt_pixels(self, pixels, fields, key):  # a decryption bug
            image = super().decrypt_pixels(pixels, fields, key).copy()
            image[0, 0, 0] ^= 1
            return image

    good = load_scheme("ric-mnist")
    broken = Broken(good.cloud_classifier(), "ric-mnist", good.image_shape, good.classifier_id, 5, good.nae)
    results = broken.encrypt_each(to_tensor(load_dataset("mnist").x_test[:3]), SecretKey.generate())
    assert all(isinstance(r, EncryptionError) and "1 samples wrong" in str(r) for r in results)
    with pytest.raises(EncryptionError, match="image 0"):
        broken.encrypt(to_tensor(load_dataset("mnist").x_test[:1]), SecretKey.generate())


def _run(args: list[str], threads: int = 1, env: dict[str, str] | None = None, cwd: Path | None = None):
    return run_cli(args, threads, cwd, env)


def _images_folder(folder: Path, dataset: str, n: int) -> np.ndarray:
    x = load_dataset(dataset).x_test[::53][:n]
    for i, image in enumerate(x):
        write_image(folder / f"img{i:02d}.png", image)
    return x


def _read_folder(folder: Path, n: int) -> np.ndarray:
    from noiseveil.data import read_image

    return np.stack([read_image(folder / f"img{i:02d}.png", channels=None) for i in range(n)])


@pytest.mark.slow
@pytest.mark.parametrize("model_id", ["ric-cifar10", "ric-cifar10-masked"])
def test_ciphertexts_from_fresh_processes_decrypt_identically_anywhere(tmp_path: Path, model_id: str) -> None:
    """Encrypt in two fresh processes (1 and 2 threads, batch 5 and 64), decrypt in others
    (the other thread count, batch 3; and single files in reverse order): 0 differences."""
    n = 10
    plain = _images_folder(tmp_path / "plain", "cifar10", n)
    key = tmp_path / "k.key"
    SecretKey.generate().save(key)
    outputs = []
    for run, (threads, batch) in enumerate([(1, 5), (2, 64)]):
        cipher, rec = tmp_path / f"cipher{run}", tmp_path / f"rec{run}"
        enc = _run(
            ["encrypt", str(tmp_path / "plain"), "-o", str(cipher), "-k", str(key), "-m", model_id]
            + ["--batch-size", str(batch), "--quiet"],
            threads,
        )
        assert enc.returncode == 0, enc.stderr
        dec = _run(
            ["decrypt", str(cipher), "-o", str(rec), "-k", str(key), "--batch-size", "3", "--quiet"],
            3 - threads,
        )
        assert dec.returncode == 0, dec.stderr
        outputs.append(_read_folder(rec, n))
    for i in (9, 4, 0):  # single files, last first: no batch, no order to lean on
        name = f"img{i:02d}.png"
        single = _run(
            ["decrypt", str(tmp_path / "cipher0" / name), "-o", str(tmp_path / "one" / name), "-k", str(key)]
        )
        assert single.returncode == 0, single.stderr
        one = _read_one(tmp_path / "one" / name).astype(int)
        # Lossless: integers only, so identical. Masked: the NAE is read back, so only the
        # decoder's last-bit float rounding may differ (a batch of one takes another kernel).
        assert np.abs(one - outputs[0][i]).max() <= (0 if model_id == "ric-cifar10" else 1)
    if model_id == "ric-cifar10":  # bit for bit
        assert np.array_equal(outputs[0], plain) and np.array_equal(outputs[1], plain)
    else:  # another encryption of the same image: the learned decoder's fidelity, in every process
        from noiseveil.metrics import psnr

        assert psnr(outputs[0], plain).min() > 40.0 and psnr(outputs[1], plain).min() > 40.0


def _read_one(path: Path) -> np.ndarray:
    from noiseveil.data import read_image

    return read_image(path, channels=None)


@pytest.mark.slow
def test_decryption_needs_no_classifier_weights(tmp_path: Path) -> None:
    """A decrypting machine that holds only the lossless model's settings (no classifier
    weights at all) and runs another thread count gets the exact images back."""
    n = 6
    plain = _images_folder(tmp_path / "plain", "lfw", n)
    key = tmp_path / "k.key"
    SecretKey.generate().save(key)
    enc = _run(
        [
            "encrypt",
            str(tmp_path / "plain"),
            "-o",
            str(tmp_path / "c"),
            "-k",
            str(key),
            "-m",
            "ric-lfw",
            "--quiet",
        ],
        threads=2,
    )
    assert enc.returncode == 0, enc.stderr
    bare = tmp_path / "weights"
    bare.mkdir()
    entry = read_manifest()["ric-lfw"]
    shutil.copy(WEIGHTS_DIR / entry["file"], bare / entry["file"])
    (bare / "manifest.json").write_text(json.dumps({"ric-lfw": entry}))
    dec = _run(
        ["decrypt", str(tmp_path / "c"), "-o", str(tmp_path / "r"), "-k", str(key), "--quiet"],
        threads=1,
        env={"NOISEVEIL_SHIPPED_WEIGHTS": str(bare)},
    )
    assert dec.returncode == 0, dec.stderr
    assert np.array_equal(_read_folder(tmp_path / "r", n), plain)
    # ... and that machine cannot encrypt: the classifier is not there, said in one line.
    enc2 = _run(
        [
            "encrypt",
            str(tmp_path / "plain"),
            "-o",
            str(tmp_path / "c2"),
            "-k",
            str(key),
            "-m",
            "ric-lfw",
            "--quiet",
        ],
        env={"NOISEVEIL_SHIPPED_WEIGHTS": str(bare)},
    )
    assert enc2.returncode != 0 and "lfw-resnet" in enc2.stderr and "Traceback" not in enc2.stderr


@pytest.mark.slow
def test_an_attack_too_weak_to_keep_the_label_is_reported_not_written(tmp_path: Path) -> None:
    n = 8
    _images_folder(tmp_path / "plain", "mnist", n)
    key = tmp_path / "k.key"
    SecretKey.generate().save(key)
    out = tmp_path / "c"
    run = _run(
        [
            "encrypt",
            str(tmp_path / "plain"),
            "-o",
            str(out),
            "-k",
            str(key),
            "-m",
            "ric-mnist",
            "--nae-steps",
            "0",
            "--quiet",
        ]
    )
    failed = [line for line in run.stderr.splitlines() if line.startswith("FAILED")]
    written = sorted(out.glob("*.png")) if out.exists() else []
    assert run.returncode == 1 and failed and "labels the ciphertext" in failed[0]
    assert len(failed) + len(written) == n and f"{len(failed)} failed" in run.stderr
    assert "Traceback" not in run.stderr


def test_verified_decryption_raises_where_an_attacker_would_see_noise() -> None:
    """A file whose HMAC holds but whose sealed payload does not (a key holder re-sealed altered
    pixels) must raise, not come back as the unauthenticated view attacks use."""
    import dataclasses

    scheme = load_scheme("ric-mnist")
    key = SecretKey.generate()
    ct = scheme.encrypt(to_tensor(load_dataset("mnist").x_test[:1]), key)[0]
    pixels = ct.pixels.copy()
    pixels[0, 0, 0] ^= 1
    resealed = dataclasses.replace(ct, pixels=pixels).seal(key)
    with pytest.raises(SchemeError, match="does not authenticate"):
        scheme.decrypt([resealed], key)
    assert decrypt_unverified(scheme, [resealed], key).shape == (1, 1, 28, 28)  # the attacker's view

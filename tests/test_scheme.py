"""RICScheme behind the Scheme interface, with a tiny untrained model (no training here)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from noiseveil.checksums import state_digest
from noiseveil.crypto.keys import SecretKey
from noiseveil.schemes.base import AuthenticationError, Ciphertext, SchemeError, ciphertext_tensor
from noiseveil.schemes.nae import generate_nae
from noiseveil.schemes.ric import RIC, RICScheme, quantize


@pytest.fixture
def sealed(tiny_ric: RICScheme, key: SecretKey, images: torch.Tensor) -> list[Ciphertext]:
    return tiny_ric.encrypt(images, key)


def resealed(ct: Ciphertext, key: SecretKey, **field_changes: str) -> Ciphertext:
    """A ciphertext with changed fields and a *valid* tag (as if the key holder made it)."""
    return dataclasses.replace(ct, fields={**ct.fields, **field_changes}).seal(key)


def test_encrypt_returns_sealed_ciphertexts(
    tiny_ric: RICScheme, key: SecretKey, images: torch.Tensor, sealed: list[Ciphertext]
) -> None:
    assert len(sealed) == 16
    labels = tiny_ric.classifier(images).argmax(1).tolist()
    for ct in sealed:
        assert isinstance(ct, Ciphertext)
        assert ct.pixels.dtype == np.uint8
        assert ct.pixels.shape == (28, 28, 1)
        assert (ct.scheme, ct.model_id, ct.key_id, ct.version) == ("ric", "test-ric", key.key_id, "2")
        assert set(ct.fields) == {
            *("nonce", "lambda", "classifier", "target", "nae_steps", "nae_lr", "nae_g1"),
            *("nae", "weights"),  # the sealed NAE decryption reads back; the decoder's SHA-256
        }
        assert ct.fields["weights"] == state_digest(tiny_ric.model)
        assert len(ct.fields["nonce"]) == 32
        assert len(bytes.fromhex(ct.fields["nonce"])) == 16
        assert ct.fields["lambda"] == "0.8"
        assert ct.fields["classifier"] == "test-cls"
        assert ct.fields["nae_steps"] == "3"
        assert ct.fields["nae_lr"] == repr(tiny_ric.nae.lr)
        assert ct.fields["nae_g1"] == "5.0"
        assert len(ct.fields["target"]) == 4
        int(ct.fields["target"], 16)
        assert len(ct.tag) == 32
        ct.verify(key)
        tiny_ric.verify(ct, key)
    assert len({ct.fields["nonce"] for ct in sealed}) == 16
    # The target travels masked: the field is not the plain label.
    assert any(int(ct.fields["target"], 16) != label for ct, label in zip(sealed, labels, strict=True))


def test_masked_target_unmasks_to_the_plain_label(
    tiny_ric: RICScheme, key: SecretKey, images: torch.Tensor, sealed: list[Ciphertext]
) -> None:
    labels = tiny_ric.classifier(images).argmax(1).tolist()
    for ct, label in zip(sealed, labels, strict=True):
        pad = tiny_ric._label_pad(key, bytes.fromhex(ct.fields["nonce"]))
        assert int(ct.fields["target"], 16) ^ pad == label


def test_ciphertext_pixels_follow_eq5(
    tiny_ric: RICScheme, key: SecretKey, images: torch.Tensor, sealed: list[Ciphertext]
) -> None:
    """Recompute x'_q = Q((1-λ) E(F(x), n_adv) + λ n_adv) from the key and compare the pixels."""
    nonces = [bytes.fromhex(ct.fields["nonce"]) for ct in sealed]
    targets = tiny_ric.classifier(images).argmax(1)
    n_adv = generate_nae(tiny_ric.classifier, tiny_ric.noise(key, nonces), targets, tiny_ric.nae)
    n_adv = (n_adv * 255).round() / 255  # the NAE on the 8-bit grid the ciphertext carries
    with torch.no_grad():
        x_q = quantize(tiny_ric.model.encode(images, n_adv), training=False)
    assert torch.equal(ciphertext_tensor(sealed), x_q)


def test_two_encryptions_differ(tiny_ric: RICScheme, key: SecretKey, images: torch.Tensor) -> None:
    a = tiny_ric.encrypt(images[:2], key)
    b = tiny_ric.encrypt(images[:2], key)
    for x, y in zip(a, b, strict=True):
        assert x.fields["nonce"] != y.fields["nonce"]
        assert not np.array_equal(x.pixels, y.pixels)
        assert x.tag != y.tag


def test_decrypt_with_the_right_key(
    tiny_ric: RICScheme, key: SecretKey, images: torch.Tensor, sealed: list[Ciphertext]
) -> None:
    out = tiny_ric.decrypt(sealed, key)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == torch.float32
    assert out.shape == (16, 1, 28, 28)
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not out.requires_grad
    # Decryption depends only on (ciphertext, key). The NAE is bit-exact in any batch; the
    # decoder's convolutions take another kernel for a batch of one (float rounding only).
    torch.testing.assert_close(tiny_ric.decrypt(sealed[3:4], key)[0], out[3], rtol=0, atol=1e-6)
    assert torch.equal(tiny_ric.decrypt(sealed[::-1], key), out.flip(0))


def test_decrypt_follows_eq9(
    tiny_ric: RICScheme, key: SecretKey, images: torch.Tensor, sealed: list[Ciphertext]
) -> None:
    nonces = [bytes.fromhex(ct.fields["nonce"]) for ct in sealed]
    n_adv = generate_nae(
        tiny_ric.classifier, tiny_ric.noise(key, nonces), tiny_ric.classifier(images).argmax(1), tiny_ric.nae
    )
    n_adv = (n_adv * 255).round() / 255
    with torch.no_grad():
        expected = tiny_ric.model.decode(ciphertext_tensor(sealed), n_adv).clamp(0.0, 1.0)
    assert torch.equal(tiny_ric.decrypt(sealed, key), expected)


def legacy(ct: Ciphertext, key: SecretKey) -> Ciphertext:
    """The same ciphertext as format 1 wrote it: no sealed NAE, no weights hash."""
    fields = {k: v for k, v in ct.fields.items() if k not in ("nae", "weights")}
    return dataclasses.replace(ct, fields=fields, version="1").seal(key)


def test_format_1_ciphertexts_still_decrypt_by_regenerating_the_nae(
    tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext]
) -> None:
    old = [legacy(ct, key) for ct in sealed]
    # The regenerated NAE is not on the 8-bit grid the format-2 encryption used, so the two
    # decryptions differ by rounding only.
    torch.testing.assert_close(tiny_ric.decrypt(old, key), tiny_ric.decrypt(sealed, key), rtol=0, atol=0.05)


def test_other_decoder_weights_are_refused(
    tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext]
) -> None:
    other = dataclasses.replace(tiny_ric, model=RIC(tiny_ric.model.cfg).eval())  # freshly initialised
    with pytest.raises(SchemeError, match="other weights of test-ric") as info:
        other.decrypt(sealed, key)
    assert "\n" not in str(info.value)


def test_a_sealed_nae_that_does_not_open_is_refused(
    tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext]
) -> None:
    other = resealed(sealed[0], key, nae=sealed[1].fields["nae"])  # authentic header, another image's NAE
    with pytest.raises(SchemeError, match="sealed NAE does not open"):
        tiny_ric.decrypt([other], key)


def test_decrypt_with_another_key_raises_before_decrypting(
    tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("_decrypt ran despite the wrong key")

    monkeypatch.setattr(tiny_ric, "_decrypt", boom)
    with pytest.raises(AuthenticationError, match="wrong key"):
        tiny_ric.decrypt(sealed, SecretKey.generate())
    with pytest.raises(AuthenticationError, match="wrong key"):
        tiny_ric.decrypt(sealed[:1], SecretKey.generate())


def test_one_bad_ciphertext_fails_the_whole_batch(
    tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiny_ric, "_decrypt", lambda *a: pytest.fail("_decrypt ran"))
    pixels = sealed[7].pixels.copy()
    pixels[5, 5, 0] ^= 1
    batch = [*sealed[:7], dataclasses.replace(sealed[7], pixels=pixels), *sealed[8:]]
    with pytest.raises(AuthenticationError, match="modified"):
        tiny_ric.decrypt(batch, key)


def test_tampered_pixel_raises(tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext]) -> None:
    ct = sealed[0]
    pixels = ct.pixels.copy()
    pixels[14, 14, 0] = 255 - pixels[14, 14, 0]
    with pytest.raises(AuthenticationError):
        tiny_ric.decrypt([dataclasses.replace(ct, pixels=pixels)], key)


@pytest.mark.parametrize("field", ["nonce", "target", "lambda", "classifier"])
def test_tampered_field_raises(
    tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext], field: str
) -> None:
    value = sealed[0].fields[field]
    changed = dataclasses.replace(sealed[0], fields={**sealed[0].fields, field: value[:-1] + "0"})
    if changed.fields[field] == value:
        changed.fields[field] = value[:-1] + "1"
    with pytest.raises(AuthenticationError):
        tiny_ric.decrypt([changed], key)


def test_other_classifier_field_raises_scheme_error(
    tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext]
) -> None:
    ct = resealed(legacy(sealed[0], key), key, classifier="torchscript:0123456789abcdef")
    ct.verify(key)  # authentic: the scheme itself must refuse it
    with pytest.raises(SchemeError, match="classifier torchscript:0123456789abcdef, not test-cls") as info:
        tiny_ric.decrypt([ct], key)
    assert not isinstance(info.value, AuthenticationError)
    assert "\n" not in str(info.value)


def test_other_lambda_raises_scheme_error(
    tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext]
) -> None:
    with pytest.raises(SchemeError, match="λ"):
        tiny_ric.decrypt([resealed(sealed[0], key, **{"lambda": "0.5"})], key)


@pytest.mark.parametrize("field", ["nonce", "target", "lambda", "nae_steps"])
def test_missing_or_malformed_field_raises_scheme_error(
    tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext], field: str
) -> None:
    ct = legacy(sealed[0], key)  # target and NAE settings matter where the NAE is regenerated
    fields = {k: v for k, v in ct.fields.items() if k != field}
    missing = dataclasses.replace(ct, fields=fields).seal(key)
    with pytest.raises(SchemeError, match="metadata is incomplete or malformed"):
        tiny_ric.decrypt([missing], key)
    with pytest.raises(SchemeError, match="metadata is incomplete or malformed"):
        tiny_ric.decrypt([resealed(ct, key, **{field: "zz"})], key)


def test_other_model_or_scheme_raises_scheme_error(
    tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext]
) -> None:
    for change in ({"model_id": "ric-cifar10"}, {"scheme": "etc"}):
        ct = dataclasses.replace(sealed[0], **change).seal(key)
        with pytest.raises(SchemeError, match="not ric/test-ric"):
            tiny_ric.decrypt([ct], key)


@pytest.mark.parametrize("shape", [(2, 1, 32, 32), (2, 3, 28, 28), (2, 1, 28, 27)])
def test_wrong_image_shape(tiny_ric: RICScheme, key: SecretKey, shape: tuple[int, ...]) -> None:
    n, c, h, w = shape
    with pytest.raises(SchemeError) as info:
        tiny_ric.encrypt(torch.rand(shape), key)
    assert str(info.value) == f"image is {h}x{w}x{c}, model test-ric takes 28x28x1 (HxWxC)"


def test_wrong_ciphertext_shape(tiny_ric: RICScheme, key: SecretKey) -> None:
    pixels = np.zeros((32, 32, 1), np.uint8)
    ct = Ciphertext(pixels, "ric", "test-ric", key.key_id, {}).seal(key)
    with pytest.raises(SchemeError) as info:
        tiny_ric.decrypt([ct], key)
    assert str(info.value) == "ciphertext is 32x32x1, model test-ric takes 28x28x1 (HxWxC)"


def test_noise_is_regenerated_exactly(tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext]) -> None:
    nonce = bytes.fromhex(sealed[0].fields["nonce"])
    a = tiny_ric.noise(key, [nonce])
    b = tiny_ric.noise(SecretKey(key.material), [nonce])
    assert a.shape == (1, 1, 28, 28)
    assert a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, tiny_ric.noise(SecretKey.generate(), [nonce]))
    other = bytes.fromhex(sealed[1].fields["nonce"])
    both = tiny_ric.noise(key, [nonce, other])
    assert torch.equal(both[0], a[0])
    assert not torch.equal(both[1], a[0])


def test_nae_at_decryption_equals_nae_at_encryption(
    tiny_ric: RICScheme, key: SecretKey, images: torch.Tensor, sealed: list[Ciphertext]
) -> None:
    nonces = [bytes.fromhex(ct.fields["nonce"]) for ct in sealed]
    targets = tiny_ric.classifier(images).argmax(1)
    batch = tiny_ric.nae_for(key, nonces, targets)
    alone = tiny_ric.nae_for(key, nonces[5:6], targets[5:6])
    assert torch.equal(alone[0], batch[5])


def test_with_nae_changes_only_the_nae(tiny_ric: RICScheme, key: SecretKey, images: torch.Tensor) -> None:
    faster = tiny_ric.with_nae(steps=1)
    assert faster.nae.steps == 1 and tiny_ric.nae.steps == 3
    assert faster.model is tiny_ric.model and faster.classifier is tiny_ric.classifier
    ct = faster.encrypt(images[:2], key)
    assert ct[0].fields["nae_steps"] == "1"
    # The step count travels in the ciphertext: the original scheme decrypts it identically.
    assert torch.equal(tiny_ric.decrypt(ct, key), faster.decrypt(ct, key))


def test_payload_round_trip(tiny_ric: RICScheme, key: SecretKey, sealed: list[Ciphertext]) -> None:
    again = RICScheme.from_payload(tiny_ric.payload(), "test-ric", tiny_ric.classifier, "test-cls")
    assert again.image_shape == (28, 28, 1)
    assert again.nae == tiny_ric.nae
    assert again.model.cfg == tiny_ric.model.cfg
    assert torch.equal(again.decrypt(sealed[:3], key), tiny_ric.decrypt(sealed[:3], key))


def test_encrypt_retries_until_the_label_agrees_and_stays_decryptable(tiny_ric, key, images):
    """Failed first tries are re-encrypted with a fresh nonce; the stored nonce is the final one."""
    from collections import Counter
    from dataclasses import replace

    from noiseveil.schemes.base import ciphertext_tensor
    from noiseveil.schemes.ric import quantize

    once = replace(tiny_ric, max_tries=1, stats=Counter())
    retrying = replace(tiny_ric, max_tries=5, stats=Counter())
    targets = tiny_ric.classifier(images).argmax(1)
    cts_once = once.encrypt_unchecked(images, key)  # the scheme's own tries, before the base class's check
    agree_once = (tiny_ric.classifier(ciphertext_tensor(cts_once)).argmax(1) == targets).sum().item()
    assert once.stats["first_try_failed"] == len(images) - agree_once
    assert once.stats["retried"] == 0

    cts = retrying.encrypt_unchecked(images, key)
    agree = (tiny_ric.classifier(ciphertext_tensor(cts)).argmax(1) == targets).sum().item()
    assert retrying.stats["encrypted"] == len(images)
    assert agree == len(images) - retrying.stats["disagreeing"]
    if retrying.stats["first_try_failed"]:
        assert retrying.stats["retried"] >= retrying.stats["first_try_failed"]
    # Every ciphertext, retried or not, is reproduced exactly from its stored nonce, target and
    # NAE settings; a retry doubles Φ's steps per attempt and its header says so.
    from noiseveil.schemes.nae import NAEConfig

    cfgs = [NAEConfig.from_fields(ct.fields, tiny_ric.nae.chunk) for ct in cts]
    assert all(c.steps in {tiny_ric.nae.steps * 2**a for a in range(5)} for c in cfgs)
    assert sum(c.steps > tiny_ric.nae.steps for c in cfgs) == retrying.stats["first_try_failed"]
    n_adv = torch.cat(
        [
            tiny_ric.nae_for(key, [bytes.fromhex(ct.fields["nonce"])], targets[i : i + 1], cfgs[i])
            for i, ct in enumerate(cts)
        ]
    )
    n_adv = (n_adv * 255).round() / 255
    with torch.no_grad():
        again = quantize(tiny_ric.model.encode(images, n_adv), training=False)
    assert torch.equal(
        (again * 255).round().to(torch.uint8), (ciphertext_tensor(cts) * 255).round().to(torch.uint8)
    )

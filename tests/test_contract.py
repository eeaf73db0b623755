"""The contract every scheme model keeps, checked through its capabilities only.

Each shipped scheme model (and so every new scheme, once it ships a model) runs through the
same generic checks on real test images: encryption, the cloud's classification, the
container round trip, decryption where the scheme recovers, wrong keys, tampering, bad input
and repeatability. Nothing here names a scheme.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from noiseveil.crypto.keys import KeyFileError, NoKey, load_key
from noiseveil.data import PHOTOS, load_dataset, load_photos, same_size_batch, to_tensor, to_uint8
from noiseveil.io.png import ciphertext_from_bytes, ciphertext_to_bytes
from noiseveil.metrics import psnr
from noiseveil.schemes.base import MIN_SIDE, AuthenticationError, Capabilities, Scheme, SchemeError
from noiseveil.zoo import load_scheme, read_manifest, shipped_schemes

MODELS = shipped_schemes()


def another_key(scheme: Scheme, seed: bytes | None = None):
    """A key of the scheme's kind other than the demo key (a trained key on a tiny budget)."""
    return scheme.keygen(seed, budget=2)


ADDED = "ric-contract-net"  # a model a user adds (`noiseveil model add`) keeps the same contract


def added_model(folder) -> str:
    """A user's own classifier (a small CNN behind an ImageNet-style pipeline) in a zoo of its own."""
    from torch import nn

    from noiseveil.classifiers.preprocessing import Preprocessing
    from noiseveil.zoo import add_classifier

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)
    )
    os.environ["NOISEVEIL_WEIGHTS"] = str(folder)
    add_classifier("contract-net", net, Preprocessing(input_size=(40, 40), resize=48), list("abcde"))
    return ADDED


@pytest.fixture(scope="module", params=[*MODELS, ADDED])
def case(request, tmp_path_factory):
    previous = os.environ["NOISEVEIL_WEIGHTS"]
    model_id = added_model(tmp_path_factory.mktemp("added")) if request.param == ADDED else request.param
    scheme = load_scheme(model_id)
    dataset = read_manifest()[model_id]["dataset"]
    if dataset in (PHOTOS, None):  # a model for photos of any size: real photos of one size, at their size
        plain = same_size_batch([image for _, image in load_photos()], 4)
    else:
        plain = load_dataset(dataset).x_test[5:9]
    key = scheme.demo_key()
    cts = scheme.encrypt(to_tensor(plain), key)
    yield scheme, plain, key, cts
    os.environ["NOISEVEIL_WEIGHTS"] = previous


def test_capabilities_are_declared(case) -> None:
    scheme, *_ = case
    caps = scheme.capabilities
    assert isinstance(caps, Capabilities)
    assert caps.cloud_model in ("plaintext", "ciphertexts", "protocol")
    assert caps.key in ("secret-256", "generator", None)
    assert not caps.key_bound_to_model or scheme.bound_key is not None


def test_the_container_round_trip_is_exact(case) -> None:
    _, _, _, cts = case
    for ct in cts:
        back = ciphertext_from_bytes(ciphertext_to_bytes(ct))
        assert np.array_equal(back.pixels, ct.pixels) and back.header() == ct.header() and back.tag == ct.tag


def test_the_cloud_classifies_ciphertexts_as_promised(case) -> None:
    scheme, plain, _, cts = case
    classifier = scheme.cloud_classifier()
    with torch.no_grad():
        on_cipher = classifier(to_tensor(np.stack([ct.pixels for ct in cts]))).argmax(1)
        if scheme.capabilities.keeps_plaintext_label:
            assert torch.equal(on_cipher, classifier(to_tensor(plain)).argmax(1))
    assert on_cipher.shape == (len(plain),)


def test_decryption_recovers_as_promised_and_repeats(case) -> None:
    scheme, plain, key, cts = case
    if not scheme.capabilities.recovers:
        pytest.skip("the scheme has no decryption")
    recovered = to_uint8(scheme.decrypt(cts, key))
    if scheme.capabilities.exact:
        assert np.array_equal(recovered, plain)
    else:
        assert psnr(recovered, plain).min() >= scheme.promised_psnr
    assert np.array_equal(to_uint8(scheme.decrypt(cts[::-1], key)), recovered[::-1])


def test_wrong_keys_and_tampering_are_refused(case) -> None:
    scheme, _, key, cts = case
    if scheme.capabilities.key is None:
        pytest.skip("a keyless scheme authenticates nothing")
    with pytest.raises(AuthenticationError):
        scheme.decrypt(cts, another_key(scheme))
    pixels = cts[0].pixels.copy()
    pixels[0, 0, 0] ^= 1
    with pytest.raises(AuthenticationError):
        scheme.decrypt([dataclasses.replace(cts[0], pixels=pixels)], key)


def test_keys_come_from_the_scheme_and_their_files_are_safe(case, tmp_path) -> None:
    scheme, plain, key, cts = case
    if scheme.capabilities.key is None:
        assert isinstance(scheme.keygen(), NoKey)
        return
    fresh = another_key(scheme)
    assert fresh.kind == scheme.capabilities.key and fresh.key_id and fresh.key_id != key.key_id
    assert another_key(scheme, b"s").key_id == another_key(scheme, b"s").key_id  # reproducible
    path = key.save(tmp_path / "k.key")
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        fresh.save(path)
    loaded = scheme.load_key(path)
    assert loaded.key_id == key.key_id and load_key(path).key_id == key.key_id
    assert np.array_equal(to_uint8(scheme.decrypt(cts[:1], loaded)), to_uint8(scheme.decrypt(cts[:1], key)))
    (tmp_path / "junk.key").write_bytes(b"not a key")
    with pytest.raises(KeyFileError) as info:
        scheme.load_key(tmp_path / "junk.key")
    assert "\n" not in str(info.value) and "junk.key" in str(info.value)
    with pytest.raises(KeyFileError, match="needs a"):
        scheme.decrypt(cts[:1], NoKey())


def test_the_payload_rebuilds_a_model_that_decrypts_the_same(case) -> None:
    scheme, plain, key, cts = case
    payload = scheme.payload()
    again = type(scheme).from_payload(payload, scheme.model_id, scheme.cloud_classifier(), None)
    assert again.capabilities == scheme.capabilities and again.image_shape == scheme.image_shape
    if scheme.capabilities.recovers:
        assert np.array_equal(to_uint8(again.decrypt(cts, key)), to_uint8(scheme.decrypt(cts, key)))


def test_bad_input_is_one_line(case) -> None:
    scheme, plain, key, _ = case
    if scheme.image_shape is None:  # any size: too small a side, or four channels, is refused
        bad = [torch.rand(1, 3, MIN_SIDE - 1, 64), torch.rand(1, 4, 64, 64)]
    else:
        h, w, c = scheme.image_shape
        bad = [torch.rand(1, c, h + 1, w)]
    for images in bad:
        with pytest.raises(SchemeError) as info:
            scheme.encrypt(images, key)
        assert "\n" not in str(info.value) and scheme.model_id in str(info.value)


def test_every_scheme_class_declares_its_capabilities() -> None:
    from noiseveil.zoo import SCHEMES

    for name, cls in SCHEMES.items():
        assert isinstance(cls.capabilities, Capabilities), name
        assert issubclass(cls, Scheme) and cls.name == name


def test_the_key_id_can_be_left_out_of_the_header(case) -> None:
    scheme, plain, key, _ = case
    if scheme.capabilities.key is None:
        pytest.skip("a keyless scheme has no key id")
    scheme.publish_key_id = False
    try:
        cts = [
            ciphertext_from_bytes(ciphertext_to_bytes(ct)) for ct in scheme.encrypt(to_tensor(plain[:1]), key)
        ]
    finally:
        scheme.publish_key_id = True
    assert all(ct.key_id == "" for ct in cts)
    assert to_uint8(scheme.decrypt(cts, key)).shape == plain[:1].shape
    with pytest.raises(AuthenticationError, match="the key is wrong, or"):
        scheme.decrypt(cts, another_key(scheme))


def test_nae_settings_are_refused_where_there_is_no_nae() -> None:
    for model_id in MODELS:
        scheme = load_scheme(model_id)
        try:
            scheme.with_nae(steps=3)
        except SchemeError as err:
            assert "makes no NAE" in str(err) and "\n" not in str(err)


class KeylessBlur(Scheme):
    """A stand-in for a keyless, non-recoverable scheme (TransNet's kind): a 3x3 box blur."""

    name = "test-keyless"
    capabilities = Capabilities(recovers=False, exact=False, key=None, cloud_model="protocol")
    model_id = "test-keyless"
    image_shape = (28, 28, 1)

    def cloud_classifier(self) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 10))

    def _encrypt(self, images, key, labels=None):
        blurred = torch.nn.functional.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False)
        return [(px, {"kernel": "3"}) for px in to_uint8(blurred)]

    def _decrypt(self, pixels, fields, key):
        raise AssertionError("a scheme that does not recover is never asked to decrypt")

    def payload(self, extra=None):
        return {"kernel": 3, **(extra or {})}

    @classmethod
    def from_payload(cls, payload, model_id, classifier, classifier_id):
        return cls()

    @classmethod
    def train(cls, plan, data, classifier, checkpoint):
        raise SchemeError("nothing to train")


def test_a_keyless_scheme_fits_the_container_and_says_it_does_not_recover(tmp_path) -> None:
    from noiseveil.io.png import read_ciphertext, write_ciphertext
    from noiseveil.pipeline import decrypt_files, plan

    scheme = KeylessBlur()
    plain = load_dataset("mnist").x_test[:3]
    key = scheme.keygen()
    assert isinstance(key, NoKey) and key.key_id == ""
    cts = scheme.encrypt(to_tensor(plain), key)
    assert all(not ct.authenticated and ct.key_id == "" for ct in cts)
    for i, ct in enumerate(cts):
        write_ciphertext(tmp_path / "c" / f"{i}.png", ct)
    back = read_ciphertext(tmp_path / "c" / "0.png")
    assert back.fields == {"kernel": "3"} and np.array_equal(back.pixels, cts[0].pixels)
    with pytest.raises(SchemeError, match="has no decryption: its protected images are not recoverable"):
        scheme.decrypt([back], key)
    report = decrypt_files(lambda _m: scheme, key, plan(tmp_path / "c", tmp_path / "r"), progress=False)
    assert report.done == 0 and len(report.failures) == 3
    assert all("not recoverable" in reason for _, reason in report.failures)
    assert not (tmp_path / "r").exists()

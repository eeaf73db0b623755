"""Attacks: the shared call shape, the label-only baseline, FR on EtC, inverse networks."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch

from noiseveil.attacks import (
    BruteForceAttack,
    CloudAttack,
    FeatureReconstructionAttack,
    ITNAttack,
    KnownPlaintextAttack,
    LabelOnlyBaseline,
    image_specific,
    pixels_of,
    same_label_control,
    same_label_partners,
    score,
)
from noiseveil.attacks.inverse import attacker_key
from noiseveil.crypto.keys import SecretKey
from noiseveil.data import load_dataset, to_tensor
from noiseveil.schemes.base import Ciphertext
from noiseveil.schemes.etc import EtCKeys, EtCScheme, apply_step
from noiseveil.unet import UNet

torch.set_num_threads(1)
KEY = SecretKey(bytes(range(32)))
CIFAR = (32, 32, 3)


@cache
def cifar() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d = load_dataset("cifar10")
    return d.x_train[:512], d.y_train[:512], d.x_test[:32], d.y_test[:32]


def as_ciphertexts(pixels: np.ndarray, block_size: int = 16) -> list[Ciphertext]:
    return [Ciphertext(p, "etc", "test", "k", {"block_size": str(block_size)}) for p in pixels]


def test_label_only_baseline_is_the_class_mean() -> None:
    x, y, xt, yt = cifar()
    attack = LabelOnlyBaseline(EtCScheme("t", CIFAR), x, y)
    guesses = attack(as_ciphertexts(xt), yt)
    assert guesses.shape == xt.shape and guesses.dtype == np.uint8
    expected = np.rint(x[y == yt[0]].astype(np.float64).mean(0))
    assert np.array_equal(guesses[0], expected.astype(np.uint8))
    # an unseen label falls back to the overall mean
    assert np.array_equal(
        attack(as_ciphertexts(xt[:1]), np.array([99]))[0], np.rint(x.mean(0)).astype(np.uint8)
    )


def test_same_label_partners_pair_within_a_class_and_skip_singletons() -> None:
    labels = np.array([0, 1, 0, 2, 0, 1])
    partners = same_label_partners(labels)
    assert partners.tolist() == [2, 5, 4, -1, 0, 1]


def test_same_label_control_tells_a_copy_from_a_class_mean() -> None:
    """The plaintext itself gains over a same-label image; the class mean (label only) does not."""
    _, _, x, y = cifar()
    labels = np.arange(len(x)) % 4  # four classes of eight real images
    means = np.stack([x[labels == c].mean(0) for c in range(4)]).round().astype(np.uint8)
    results = {
        "copy": {"control": same_label_control(x, x, labels)},
        "class mean": {"control": same_label_control(means[labels], x, labels)},
    }
    assert results["copy"]["control"]["images"] == len(x)
    assert results["copy"]["control"]["ssim"]["gain"] > 0.5
    assert abs(results["class mean"]["control"]["ssim"]["gain"]) < 0.05
    assert image_specific(results) == ["copy"]


def test_call_shape_checks_labels() -> None:
    x, y, xt, _ = cifar()
    with pytest.raises(ValueError, match="labels"):
        LabelOnlyBaseline(EtCScheme("t", CIFAR), x, y)(as_ciphertexts(xt[:3]), np.zeros(2))
    with pytest.raises(ValueError, match="reconstructions"):
        score(xt[:2], xt[:3])


def test_fr_features_survive_negative_positive_and_colour_shuffle() -> None:
    _, _, xt, _ = cifar()
    keys = EtCKeys.derive(KEY, CIFAR, 16)
    y = apply_step(apply_step(xt, keys, "negative-positive"), keys, "colour-shuffle")
    fr = FeatureReconstructionAttack(EtCScheme("t", CIFAR))
    assert keys.negative.any() and np.array_equal(
        fr(as_ciphertexts(y), np.zeros(32)), fr(as_ciphertexts(xt), np.zeros(32))
    )
    # ...but not the block permutation: the features stay where the ciphertext put them
    z = apply_step(xt, keys, "block-permutation")
    assert not np.array_equal(fr(as_ciphertexts(z), np.zeros(32)), fr(as_ciphertexts(xt), np.zeros(32)))


def test_fr_recovers_grey_structure_of_unpermuted_blocks() -> None:
    _, _, xt, _ = cifar()
    keys = EtCKeys.derive(KEY, CIFAR, 16)
    y = apply_step(apply_step(xt, keys, "negative-positive"), keys, "colour-shuffle")
    guess = FeatureReconstructionAttack(EtCScheme("t", CIFAR))(as_ciphertexts(y), np.zeros(32))
    # Without K1/K2 the attack gives the grey image up to one global polarity (border continuity
    # fixes the blocks relative to each other): |SSIM| far above the ciphertext's.
    grey = np.repeat(np.rint(xt.mean(axis=3, keepdims=True)).astype(np.uint8), 3, axis=3)
    up_to_polarity = np.maximum(score(guess, grey)["ssim"], score(255 - guess, grey)["ssim"])
    assert up_to_polarity.mean() > 0.8
    assert up_to_polarity.mean() > score(y, xt)["ssim"].mean() + 0.3


def test_unet_shapes() -> None:
    net = UNet(3, 3, (8, 16, 32))
    out = net(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    assert UNet(1, 1, (8, 16))(torch.rand(1, 1, 28, 28)).shape == (1, 1, 28, 28)


def test_attacker_keys_are_reproducible_and_distinct() -> None:
    assert (
        attacker_key(EtCScheme("attacker", CIFAR), 0, 1).material
        == attacker_key(EtCScheme("attacker", CIFAR), 0, 1).material
    )
    assert (
        len({attacker_key(EtCScheme("attacker", CIFAR), s, i).material for s in range(2) for i in range(20)})
        == 40
    )


def test_itn_pairs_use_the_attackers_keys() -> None:
    x, _, _, _ = cifar()
    scheme = EtCScheme("attacker", CIFAR)
    attack = ITNAttack(scheme, x[:32], images_per_key=16, steps=1)
    cipher, plain = attack.training_pairs()
    assert plain is attack.aux_images[:32] or np.array_equal(plain, x[:32])
    first = pixels_of(scheme.encrypt(to_tensor(x[:16]), attacker_key(scheme, 0, 0)))
    assert np.array_equal(cipher[:16], first)
    assert not np.array_equal(cipher[:16], pixels_of(scheme.encrypt(to_tensor(x[:16]), KEY)))


def test_itn_shares_out_the_keys_it_is_given() -> None:
    x, _, _, _ = cifar()
    scheme = EtCScheme("attacker", CIFAR)
    mine = [attacker_key(scheme, 7, 0), attacker_key(scheme, 7, 1)]
    cipher, _ = ITNAttack(scheme, x[:24], images_per_key=8, keys=mine, steps=1).training_pairs()
    for start, key in ((0, mine[0]), (8, mine[1]), (16, mine[0])):  # in turn
        expected = pixels_of(scheme.encrypt(to_tensor(x[start : start + 8]), key))
        assert np.array_equal(cipher[start : start + 8], expected)
    with pytest.raises(ValueError, match="at least one attacker key"):
        ITNAttack(scheme, x[:8], keys=[])


def test_known_plaintext_attack_learns_an_easy_cipher() -> None:
    """Colour shuffle + negative-positive only (no permutation) is learnable from one key's pairs."""
    x, _, xt, _ = cifar()
    keys = EtCKeys.derive(KEY, CIFAR, 16)

    def weak(images: np.ndarray) -> np.ndarray:
        return apply_step(apply_step(images, keys, "negative-positive"), keys, "colour-shuffle")

    kpa = KnownPlaintextAttack(
        EtCScheme("t", CIFAR),
        as_ciphertexts(weak(x[:256])),
        x[:256],
        steps=60,
        batch_size=16,
        widths=(8, 16),
        lr=5e-3,
    )
    report = kpa.fit()
    assert report["final_l1"] < report["first_l1"]
    guess = kpa(as_ciphertexts(weak(xt)), np.zeros(len(xt)))
    assert score(guess, xt)["ssim"].mean() > score(weak(xt), xt)["ssim"].mean()


def test_flip_bit_changes_exactly_one_bit() -> None:
    for bit in (0, 7, 8, 255):
        other = KEY.with_bit_flipped(bit)
        diff = int.from_bytes(bytes(a ^ b for a, b in zip(KEY.material, other.material, strict=True)), "big")
        assert bin(diff).count("1") == 1 and other.with_bit_flipped(bit).material == KEY.material
    assert KEY.secret_bits == 256


def test_attacker_keys_match_the_published_derivation() -> None:
    """Results in results/security were made with these keys: the scheme's seeded keygen must
    keep giving SHA-256 of the same string."""
    import hashlib

    key = attacker_key(EtCScheme("attacker", CIFAR), 3, 7)
    assert key.material == hashlib.sha256(b"noiseveil attacker key/3/7").digest()


def test_brute_force_wrong_keys_scramble_and_the_right_key_recovers() -> None:
    _, _, xt, _ = cifar()
    scheme = EtCScheme("t", CIFAR)
    cts = scheme.encrypt(to_tensor(xt[:8]), KEY)
    attack = BruteForceAttack(scheme, [attacker_key(scheme, 0, 0), KEY.with_bit_flipped(3), KEY])
    wrong, one_bit, right = attack.sweep(cts)
    assert np.array_equal(right, xt[:8])  # the MAC is skipped, the right key still decrypts
    for guess in (wrong, one_bit):
        assert score(guess, xt[:8])["ssim"].mean() < 0.5
    assert np.array_equal(attack(cts, np.zeros(8)), wrong)
    assert len(BruteForceAttack(scheme, n_keys=5).guesses) == 5
    with pytest.raises(ValueError, match="at least one"):
        BruteForceAttack(scheme, [])


def test_brute_force_on_shipped_ric_model_gets_noise() -> None:
    from noiseveil.zoo import load_scheme

    scheme = load_scheme("ric-cifar10")
    _, _, xt, _ = cifar()
    cts = scheme.encrypt(to_tensor(xt[:4]), KEY)
    attack = BruteForceAttack.one_bit_away(scheme, KEY, [0, 200])
    for guess in attack.sweep(cts):
        assert score(guess, xt[:4])["psnr_db"].mean() < 15.0
    assert score(attack.decrypt_with(cts, KEY), xt[:4])["psnr_db"].mean() > 30.0


def test_cloud_attack_trains_and_reconstructs() -> None:
    from noiseveil.classifiers.isotropic import ConvMixer

    x, _, xt, _ = cifar()
    scheme = EtCScheme("t", CIFAR, classifier=ConvMixer(dim=8, depth=1, patch_size=8).eval())
    cts = scheme.encrypt(to_tensor(x[:64]), KEY)
    attack = CloudAttack(scheme, cts, x[64:192], steps=3, batch_size=8, latent=16)
    report = attack.fit()
    assert report["steps"] == 3 and 0.0 <= report["label_match_on_training_ciphertexts"] <= 1.0
    guess = attack(scheme.encrypt(to_tensor(xt[:4]), KEY), np.zeros(4))
    assert guess.shape == xt[:4].shape and guess.dtype == np.uint8
    with pytest.raises(ValueError, match="square images"):
        CloudAttack(EtCScheme("t", (28, 32, 1), block_size=4), [], x[:1])


def test_cloud_attack_draws_28x28_images() -> None:
    """MNIST's side is not a multiple of 8: the generator draws at 32 and is cropped to 28."""
    from noiseveil.zoo import load_scheme

    scheme = load_scheme("ric-mnist")
    from noiseveil.data import load_dataset

    mnist = load_dataset("mnist")
    cts = scheme.encrypt(to_tensor(mnist.x_test[:8]), KEY)
    attack = CloudAttack(scheme, cts, mnist.x_train[:32], steps=2, batch_size=4, latent=8)
    assert attack.fit()["steps"] == 2
    assert attack(cts[:3], np.zeros(3)).shape == (3, 28, 28, 1)

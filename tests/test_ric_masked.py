"""The "masked" RIC preset (beyond the paper): image residuals plus a keyed one-time pad.

These tests pin down what the design promises before any training: at initialisation the
model is the identity up to 8-bit quantisation, the keyed pad makes the encoded image uniform
whatever the image (so low-pass filtering, contrast stretching or local variance of the
ciphertext show nothing, which the plain residual blend does not), and decryption
regenerates the pad.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter, uniform_filter

from noiseveil.classifiers.architectures import ResNet, freeze
from noiseveil.crypto.keys import SecretKey
from noiseveil.data import load_dataset, to_tensor
from noiseveil.schemes.nae import NAEConfig
from noiseveil.schemes.ric import PRESETS, RIC, RICConfig, RICScheme, quantize

torch.set_num_threads(1)
KEY = SecretKey(bytes(range(32)))
MASKED = PRESETS["masked"]
# Rounding x' to 8 bits moves u by at most 0.5/255/(1 − λ); the pad's margin scales it by 1/(1 − 2m).
ROUNDING_BOUND = 0.5 / 255 / (1 - MASKED.lam) / (1 - 2 * MASKED.pad_margin)


def cifar(n: int = 32) -> torch.Tensor:
    return to_tensor(load_dataset("cifar10").x_test[:n])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def lowpass(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return gaussian_filter(np.asarray(x), sigma=(0, 0, 2, 2))


def local_std(x: torch.Tensor | np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    mean = uniform_filter(x, size=(1, 1, 5, 5))
    return np.sqrt(np.maximum(uniform_filter(x * x, size=(1, 1, 5, 5)) - mean**2, 0))


def test_config_checks() -> None:
    assert MASKED.residual and MASKED.keyed_pad
    with pytest.raises(ValueError, match="keep residual and srl"):
        RIC(RICConfig(keyed_pad=True, residual=True, srl=False))
    with pytest.raises(ValueError, match="keep srl"):
        RIC(RICConfig(residual=True, srl=False))
    with pytest.raises(ValueError, match="pass pad"):
        RIC(MASKED).encode(cifar(1), torch.rand(1, 3, 32, 32))


def test_initial_masked_model_is_the_identity_up_to_quantisation() -> None:
    x, n, pad = cifar(), torch.rand(32, 3, 32, 32), torch.rand(32, 3, 32, 32)
    model = RIC(MASKED).eval()
    with torch.no_grad():
        x_q = quantize(model.encode(x, n, pad), training=False)
        x_rec = model.decode(x_q, n, pad)
    err = (x_rec - x).abs()
    # x' never clips and the margin keeps black off the wrap point, so the bound holds everywhere
    assert err.max() <= ROUNDING_BOUND + 1e-5
    assert err.max() > ROUNDING_BOUND / 4  # the quantisation error is real


def test_keyed_pad_makes_the_encoded_image_uniform_whatever_the_image() -> None:
    model = RIC(MASKED).eval()
    pad = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    n = torch.full_like(pad, 0.0)  # λ·0: x' is (1 − λ)·u_en alone
    for value in (0.0, 1.0):
        with torch.no_grad():
            u = model.encode(torch.full_like(pad, value), n, pad) / (1 - MASKED.lam)
        assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.std().item() - 12**-0.5) < 0.01


def test_keyed_pad_hides_the_image_from_simple_processing() -> None:
    x, n = cifar(), torch.rand(32, 3, 32, 32)
    pad = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    plain_residual = RIC(replace(MASKED, keyed_pad=False)).eval()
    masked = RIC(MASKED).eval()
    with torch.no_grad():
        leaky = quantize(plain_residual.encode(x, n), training=False)
        hidden = quantize(masked.encode(x, n, pad), training=False)
    assert correlation(lowpass(leaky), lowpass(x)) > 0.3  # (1 − λ)·x shows through the noise
    assert abs(correlation(lowpass(hidden), lowpass(x))) < 0.05
    # local contrast: a sign mask would leak |x − ½| here, a pad on the circle does not
    assert abs(correlation(local_std(hidden), np.abs(x.numpy() - 0.5))) < 0.05


def test_scheme_regenerates_a_keyed_pad_independent_of_the_noise() -> None:
    torch.manual_seed(0)
    scheme = RICScheme(
        model=RIC(replace(MASKED, width=8, feature_channels=8)).eval(),
        classifier=freeze(ResNet(num_classes=10, blocks=(1,), widths=(8,))),
        model_id="test-masked",
        image_shape=(32, 32, 3),
        classifier_id="test-cls",
        nae=NAEConfig(steps=2),
    )
    nonces = [bytes([i]) * 16 for i in range(4)]
    pad = scheme.pad(KEY, nonces)
    assert pad.min() >= 0 and pad.max() < 1 and torch.equal(pad, scheme.pad(KEY, nonces))
    assert abs(correlation(pad.numpy(), scheme.noise(KEY, nonces).numpy())) < 0.05
    x = cifar(4)
    recovered = scheme.decrypt(scheme.encrypt(x, KEY), KEY)
    assert (recovered - x).abs().max() <= ROUNDING_BOUND + 1e-5
    fast = replace(scheme, model=RIC(replace(PRESETS["fast"], width=8, feature_channels=8)))
    assert fast.pad(KEY, nonces) is None


def test_every_preset_has_a_learning_rate_and_a_cli_choice() -> None:
    from noiseveil.app.cli import build_parser
    from noiseveil.schemes.ric_training import PRESET_LR

    assert set(PRESET_LR) == set(PRESETS)
    for preset in PRESETS:
        assert build_parser().parse_args(["train", "ric-cifar10", "--preset", preset]).preset == preset


def test_retries_with_a_stronger_nae_reach_the_label_noise_reaches_slowly() -> None:
    """ric-mnist's first tries miss the digit "1" most often (a thin stroke that noise reaches
    slowly), and a fresh nonce alone misses again: retries double Φ's steps, every ciphertext
    then carries its image's label, and decryption regenerates the stronger NAE from the header."""
    from noiseveil.classifiers.training import predict
    from noiseveil.data import to_uint8
    from noiseveil.metrics import psnr
    from noiseveil.schemes.base import ciphertext_tensor
    from noiseveil.zoo import load_scheme

    scheme = load_scheme("ric-mnist-masked")
    data = load_dataset("mnist")
    x = data.x_test[:200]
    ones = x[predict(scheme.classifier, to_tensor(x)).numpy() == 1][:8]
    key = SecretKey.generate()
    cts = scheme.encrypt(to_tensor(ones), key)
    assert (predict(scheme.classifier, ciphertext_tensor(cts)) == 1).all(), dict(scheme.stats)
    steps = [NAEConfig.from_fields(ct.fields).steps for ct in cts]
    assert scheme.stats["first_try_failed"] > 0 and max(steps) > scheme.nae.steps
    assert psnr(to_uint8(scheme.decrypt(cts, key)), ones).min() > 40.0

"""The "masked" RIC preset (beyond the paper): image residuals plus keyed ±1 signs.

These tests pin down what the design promises before any training: with E and D at zero the
model is the identity up to 8-bit quantisation, the keyed signs hide the image from low-pass
filtering (which the plain residual blend does not), and decryption regenerates the signs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from noiseveil.classifiers.architectures import ResNet
from noiseveil.crypto.keys import SecretKey
from noiseveil.data import load_dataset, to_tensor
from noiseveil.schemes.nae import NAEConfig
from noiseveil.schemes.ric import PRESETS, RIC, RICConfig, RICScheme, quantize
from noiseveil.zoo import freeze

torch.set_num_threads(1)
KEY = SecretKey(bytes(range(32)))


def zeroed(cfg: RICConfig) -> RIC:
    """A masked RIC whose E and D output zero: only the residual and sign paths remain."""
    model = RIC(cfg)
    for stack in (model.encoder, model.decoder):
        torch.nn.init.zeros_(stack.project.weight)
        torch.nn.init.zeros_(stack.project.bias)
    return model.eval()


def cifar(n: int = 32) -> torch.Tensor:
    return to_tensor(load_dataset("cifar10").x_test[:n])


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def lowpass(x: torch.Tensor) -> np.ndarray:
    return gaussian_filter(x.numpy(), sigma=(0, 0, 2, 2))


def test_config_checks() -> None:
    assert PRESETS["masked"].residual and PRESETS["masked"].keyed_signs
    with pytest.raises(ValueError, match="keep srl"):
        RIC(RICConfig(keyed_signs=True, srl=False))
    with pytest.raises(ValueError, match="pass signs"):
        RIC(PRESETS["masked"]).encode(cifar(1), torch.rand(1, 3, 32, 32))


def test_zeroed_masked_model_is_the_identity_up_to_quantisation() -> None:
    x, n = cifar(), torch.rand(32, 3, 32, 32)
    signs = torch.randint(0, 2, x.shape).float() * 2 - 1
    model = zeroed(PRESETS["masked"])
    with torch.no_grad():
        x_rec = model.decode(quantize(model.encode(x, n, signs), training=False), n, signs)
    err = (x_rec - x).abs()
    # rounding x' to 8 bits costs at most 0.5/255 / (1 − λ) = 2.5/255 where x' is not clipped
    assert torch.quantile(err.flatten(), 0.9) <= 2.5 / 255 + 1e-6
    assert not torch.equal(x_rec, x)  # the quantisation error is real


def test_keyed_signs_hide_the_image_from_low_pass_filtering() -> None:
    x, n = cifar(), torch.rand(32, 3, 32, 32)
    signs = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(0)).float() * 2 - 1
    plain_residual = zeroed(replace(PRESETS["masked"], keyed_signs=False))
    masked = zeroed(PRESETS["masked"])
    with torch.no_grad():
        leaky = quantize(plain_residual.encode(x, n), training=False)
        hidden = quantize(masked.encode(x, n, signs), training=False)
    assert correlation(lowpass(leaky), lowpass(x)) > 0.3  # 0.2·x shows through the noise
    assert abs(correlation(lowpass(hidden), lowpass(x))) < 0.05


def test_scheme_regenerates_keyed_signs_independent_of_the_noise() -> None:
    torch.manual_seed(0)
    scheme = RICScheme(
        model=zeroed(replace(PRESETS["masked"], width=8, feature_channels=8)),
        classifier=freeze(ResNet(num_classes=10, blocks=(1,), widths=(8,))),
        model_id="test-masked",
        image_shape=(32, 32, 3),
        classifier_id="test-cls",
        nae=NAEConfig(steps=2),
    )
    nonces = [bytes([i]) * 16 for i in range(4)]
    signs = scheme.signs(KEY, nonces)
    assert set(signs.unique().tolist()) == {-1.0, 1.0} and torch.equal(signs, scheme.signs(KEY, nonces))
    assert abs(correlation(signs.numpy(), scheme.noise(KEY, nonces).numpy())) < 0.05
    x = cifar(4)
    recovered = scheme.decrypt(scheme.encrypt(x, KEY), KEY)
    assert torch.quantile((recovered - x).abs().flatten(), 0.9) <= 2.5 / 255 + 1e-6
    assert (
        scheme.signs(KEY, nonces) is not None
        and RICScheme.signs(
            replace(scheme, model=RIC(replace(PRESETS["fast"], width=8, feature_channels=8))), KEY, nonces
        )
        is None
    )


def test_every_preset_has_a_learning_rate_and_a_cli_choice() -> None:
    from noiseveil.cli import build_parser
    from noiseveil.schemes.ric_training import PRESET_LR

    assert set(PRESET_LR) == set(PRESETS)
    for preset in PRESETS:
        assert build_parser().parse_args(["train", "ric-cifar10", "--preset", preset]).preset == preset

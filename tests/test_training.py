"""Training resumes from its checkpoint exactly where it stopped (shared TrainingState)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from noiseveil.classifiers import ResNet
from noiseveil.classifiers.training import TrainConfig, train_classifier
from noiseveil.data import ImageDataset


def tiny_data() -> ImageDataset:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (96, 8, 8, 1), dtype=np.uint8)
    y = (x.reshape(96, -1).mean(1) > 127).astype(np.int64)  # learnable: bright vs dark
    return ImageDataset("tiny", x[:64], y[:64], x[64:], y[64:], ("dark", "bright"), "test")


def model() -> ResNet:
    torch.manual_seed(0)
    return ResNet(in_channels=1, num_classes=2, blocks=(1,), widths=(4,))


def test_resumed_training_equals_uninterrupted_training(tmp_path):
    data, cfg = tiny_data(), TrainConfig(epochs=2, batch_size=16, lr=0.05, augment="none")
    straight = model()
    full = train_classifier(straight, data, cfg)

    ckpt = tmp_path / "run.ckpt"
    first = {"command": "session 1", "git_commit": "a"}
    train_classifier(model(), data, cfg, ckpt, stop_after=1, run=first)  # "session 1" stops after epoch 1
    resumed_model = model()  # a new process rebuilds the model from scratch and resumes
    resumed = train_classifier(
        resumed_model, data, cfg, ckpt, run={"command": "session 2", "git_commit": "b"}
    )
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    # which run trained which epochs: each chunk of a training spread over sessions is on record
    assert resumed["runs"] == [
        {**first, "from_epoch": 1},
        {"command": "session 2", "git_commit": "b", "from_epoch": 2},
    ]
    for got, want in zip(resumed["history"], full["history"], strict=True):
        assert got["loss"] == want["loss"] and got["test_accuracy"] == want["test_accuracy"]
    for a, b in zip(resumed_model.state_dict().values(), straight.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob("*.tmp")), "checkpoint writes must be atomic"


@pytest.mark.parametrize("preset", ["fast", "masked"])
def test_fit_ric_trains_resumes_and_reports_a_curve(tmp_path, monkeypatch, preset):
    """A few RIC steps on real CIFAR-10 images: pool cached, curve written, checkpoint resumes."""
    from dataclasses import replace

    from noiseveil.classifiers.architectures import freeze
    from noiseveil.data import load_dataset
    from noiseveil.schemes.nae import NAEConfig
    from noiseveil.schemes.ric import PRESETS, RIC, RICScheme
    from noiseveil.schemes.ric_training import RICTrainConfig, fit_ric

    monkeypatch.setenv("NOISEVEIL_CACHE", str(tmp_path / "cache"))
    d = load_dataset("cifar10")
    data = ImageDataset("tiny", d.x_train[:64], d.y_train[:64], d.x_test[:16], d.y_test[:16], d.classes, "t")
    torch.manual_seed(0)
    scheme = RICScheme(
        model=RIC(replace(PRESETS[preset], width=8, feature_channels=8)),
        classifier=freeze(ResNet(num_classes=10, blocks=(1,), widths=(8,))),
        model_id="test-ric",
        image_shape=(32, 32, 3),
        classifier_id="test-cls",
        nae=NAEConfig(steps=2),
    )
    cfg = RICTrainConfig(steps=4, batch_size=8, pool_per_class=2, val_images=8, eval_every=2)
    before = [p.detach().clone() for p in scheme.model.parameters()]
    report = fit_ric(scheme, data, replace(cfg, steps=2), tmp_path / "r.ckpt", cache_tag="t")
    assert [p["step"] for p in report["curve"]] == [0, 2]  # the curve starts untrained
    assert list((tmp_path / "cache" / "nae-pools").glob("t-2-0.npz"))
    report = fit_ric(scheme, data, cfg, tmp_path / "r.ckpt", cache_tag="t")  # resumes at step 2
    assert [p["step"] for p in report["curve"]] == [0, 2, 4]
    assert all(np.isfinite(p["val_psnr"]) for p in report["curve"])
    assert any(not torch.equal(a, b) for a, b in zip(before, scheme.model.parameters(), strict=True))


@pytest.mark.parametrize("card_id", ["cifar10-resnet20", "cifar10-vgg"])
def test_every_card_builds_with_the_training_sets_statistics(card_id):
    """`noiseveil train-classifier` hands every architecture its training set's mean and std;
    they become its first layer."""
    from noiseveil.classifiers.architectures import build_classifier
    from noiseveil.zoo import CLASSIFIERS

    card = CLASSIFIERS[card_id]
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.6, 0.7]
    model = build_classifier(card.arch, **card.config, in_channels=3, mean=mean, std=std).eval()
    first = model.features[0]
    assert torch.allclose(first.mean.flatten(), torch.tensor(mean)) and torch.allclose(
        first.std.flatten(), torch.tensor(std)
    )
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_the_classifiers_training_labels_are_cached_by_weights_and_images(tmp_path, monkeypatch) -> None:
    """fit_ric's NAE targets: computed once per (weights, images), as ``predict`` gives them;
    other weights or other images are classified afresh, never read from another's entry."""
    from noiseveil.data import load_dataset, to_tensor
    from noiseveil.schemes import ric_training
    from noiseveil.zoo import load_scheme

    monkeypatch.setenv("NOISEVEIL_CACHE", str(tmp_path / "cache"))
    # a copy: its weights change below, and a loaded model may be shared in this process
    classifier = copy.deepcopy(load_scheme("ric-cifar10-masked").classifier)
    pixels = load_dataset("cifar10").x_train[:96]
    first = ric_training.classifier_labels(classifier, pixels, to_tensor(pixels))
    assert torch.equal(first, ric_training.predict(classifier, to_tensor(pixels)))
    calls = []
    real_predict = ric_training.predict
    monkeypatch.setattr(ric_training, "predict", lambda *a, **k: calls.append(1) or real_predict(*a, **k))
    assert torch.equal(ric_training.classifier_labels(classifier, pixels, to_tensor(pixels)), first)
    assert calls == []  # the cached entry
    other = pixels[::-1].copy()  # the same images in another order: another entry
    assert torch.equal(ric_training.classifier_labels(classifier, other, to_tensor(other)), first.flip(0))
    with torch.no_grad():
        next(classifier.parameters()).add_(1.0)  # other weights: another entry
    ric_training.classifier_labels(classifier, pixels, to_tensor(pixels))
    assert len(calls) == 2 and len(list((tmp_path / "cache" / "classifier-labels").glob("*.npz"))) == 3

"""Training resumes from its checkpoint exactly where it stopped (shared TrainingState)."""

from __future__ import annotations

import numpy as np
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
    train_classifier(model(), data, cfg, ckpt, stop_after=1)  # "session 1" stops after epoch 1
    resumed_model = model()  # a new process rebuilds the model from scratch and resumes
    resumed = train_classifier(resumed_model, data, cfg, ckpt)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    for got, want in zip(resumed["history"], full["history"], strict=True):
        assert got["loss"] == want["loss"] and got["test_accuracy"] == want["test_accuracy"]
    for a, b in zip(resumed_model.state_dict().values(), straight.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob("*.tmp")), "checkpoint writes must be atomic"

"""Training commands: the cloud's classifiers and RIC models of the zoo."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from noiseveil.classifiers.architectures import build_classifier
from noiseveil.classifiers.training import train_classifier
from noiseveil.data import load_dataset
from noiseveil.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.zoo import CLASSIFIERS, ZooError, save_weights


def train_classifier_command(model_id: str, epochs: int | None, checkpoint_dir: Path) -> dict:
    """Train a zoo classifier, ship its weights and write ``results/classifiers/<id>.json``."""
    if model_id not in CLASSIFIERS:
        raise ZooError(f"unknown classifier {model_id!r}; known: {', '.join(CLASSIFIERS)}")
    card = CLASSIFIERS[model_id]
    data = load_dataset(card.dataset)
    train_cfg = card.train if epochs is None else replace(card.train, epochs=epochs)
    # Input statistics of the training set become the model's first layer.
    x = data.x_train.astype(np.float32) / 255.0
    config = {
        **card.config,
        "in_channels": data.image_shape[2],
        "mean": x.mean(axis=(0, 1, 2)).round(4).tolist(),
        "std": x.std(axis=(0, 1, 2)).round(4).tolist(),
    }
    model = build_classifier(card.arch, **config)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    report = train_classifier(model, data, train_cfg, checkpoint_dir / f"{model_id}.ckpt")
    prov = provenance([data.source_id], [model_id])
    info = {
        "kind": "classifier",
        "dataset": card.dataset,
        "arch": card.arch,
        "config": config,
        "test_accuracy": report["test_accuracy"],
        "train_seconds": report["train_seconds"],
        "command": prov["command"],
        "git_commit": prov["git_commit"],
    }
    save_weights(
        model_id,
        {
            "arch": card.arch,
            "config": config,
            "state_dict": model.state_dict(),
            "classes": list(data.classes),
            "dataset": data.source_id,
        },
        info,
    )
    params = sum(p.numel() for p in model.parameters())
    result = {
        **prov,
        "model_id": model_id,
        "note": card.note,
        "arch": card.arch,
        "config": config,
        "parameters": params,
        "train": asdict(train_cfg),
        **report,
    }
    write_result(RESULTS_DIR / "classifiers" / f"{model_id}.json", result)
    torch.set_num_threads(torch.get_num_threads())
    return result

"""Training commands: the cloud's classifiers and the zoo's scheme models (any scheme, through
its ``train``)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.classifiers.architectures import build_classifier
from noiseveil.classifiers.training import train_classifier
from noiseveil.crypto.keys import Key
from noiseveil.data import load_dataset
from noiseveil.zoo import (
    CLASSIFIERS,
    SCHEME_CARDS,
    SCHEMES,
    ZooError,
    check_new_model_id,
    read_manifest,
    save_weights,
    shipped_classifier,
    training_plan,
)


def train_classifier_command(
    model_id: str,
    epochs: int | None,
    checkpoint_dir: Path,
    save_as: str | None = None,
    replace_existing: bool = False,
    stop_after: int | None = None,
) -> dict:
    """Train a zoo classifier, ship its weights (as ``save_as`` if given) and write
    ``results/training/<id>.json``. An existing model is only replaced with ``replace_existing``.
    ``stop_after`` ends this run after that many more epochs: the checkpoint keeps the training,
    nothing ships until the last epoch (a training of hours, split across sessions)."""
    if model_id not in CLASSIFIERS:
        raise ZooError(f"unknown classifier {model_id!r}; known: {', '.join(CLASSIFIERS)}")
    card = CLASSIFIERS[model_id]
    card_id, model_id = model_id, save_as or model_id
    check_new_model_id(model_id, replace_existing)  # before hours of training, not after
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
    prov = provenance([data.source_id], [model_id])  # at the start: the commit that trains
    checkpoint = checkpoint_dir / f"{model_id}.ckpt"
    run = {k: prov[k] for k in ("command", "git_commit", "date")}
    report = train_classifier(model, data, train_cfg, checkpoint, stop_after=stop_after, run=run)
    if len(report["history"]) < train_cfg.epochs:
        return {**report, "partial": True, "epochs": train_cfg.epochs, "checkpoint": str(checkpoint)}
    info = {
        "kind": "classifier",
        "card": card_id,
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
            "image_shape": data.image_shape,
            "dataset": data.source_id,
        },
        info,
        replace=replace_existing,
    )
    checkpoint.unlink(missing_ok=True)  # shipped: the next run starts afresh
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
    write_training_record(model_id, result)
    return result


def write_training_record(model_id: str, result: dict[str, Any]) -> None:
    """``results/training/<id>.json``. The record of the weights this training replaced moves
    with them to ``ID@SHA`` (as the zoo archived them), so every shipped file stays traceable;
    a record and its manifest entry were written by one run, so they name the same commit."""
    path = RESULTS_DIR / "training" / f"{model_id}.json"
    if path.exists():
        commit = json.loads(path.read_text()).get("git_commit")
        for name, entry in read_manifest().items():
            kept = path.with_name(f"{name}.json")
            if entry.get("archived_from") == model_id and entry["git_commit"] == commit and not kept.exists():
                os.replace(path, kept)
                break
    write_result(path, result)


def train_scheme_command(
    model_id: str,
    steps: int | None,
    checkpoint_dir: Path,
    preset: str | None = None,
    save_as: str | None = None,
    key: Key | None = None,
    replace_existing: bool = False,
    cloud_url: str | None = None,
) -> dict:
    """Train a zoo scheme model with its scheme's :meth:`~noiseveil.schemes.base.Scheme.train`
    and ship it (as ``save_as`` if given), writing ``results/training/<id>.json``.

    ``steps`` is the scheme's training budget (RIC: steps; EtC: epochs), ``preset`` a network
    preset of schemes that have them, ``key`` the key a key-bound cloud model is trained for;
    each scheme refuses what does not apply to it, in one line, before any work."""
    if model_id not in SCHEME_CARDS:
        raise ZooError(f"unknown scheme model {model_id!r}; known: {', '.join(SCHEME_CARDS)}")
    card = SCHEME_CARDS[model_id]
    scheme_class = SCHEMES[card.scheme]
    if cloud_url and scheme_class.capabilities.cloud_model != "protocol":
        raise ZooError(f"--cloud is for schemes trained with the cloud through a protocol; {model_id} is not")
    model_id = save_as or model_id
    check_new_model_id(model_id, replace_existing)  # before hours of training, not after
    data = load_dataset(card.dataset)
    plan = training_plan(
        card,
        data.image_shape,
        model_id=model_id,
        preset=preset,
        budget=steps,
        key=key,
        cloud_url=cloud_url,
        cloud_token=os.environ.get("NOISEVEIL_TOKEN") if cloud_url else None,  # the service asks for one
    )
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    prov = provenance([data.source_id], sorted({model_id, card.classifier_id}))  # the commit that trains
    cloud = shipped_classifier({"classifier_id": card.classifier_id})
    trained = scheme_class.train(plan, data, cloud, checkpoint_dir / f"{model_id}.ckpt")
    info = {
        "kind": "scheme",
        "scheme": scheme_class.name,
        "dataset": card.dataset,
        "classifier_id": card.classifier_id,
        **trained.manifest,
        "command": prov["command"],
        "git_commit": prov["git_commit"],
    }
    extra = {"scheme": scheme_class.name, "dataset": data.source_id}
    save_weights(model_id, trained.scheme.payload(extra), info, replace=replace_existing)
    # Shipped: a later run must train afresh, not "resume" a finished run in seconds.
    (checkpoint_dir / f"{model_id}.ckpt").unlink(missing_ok=True)
    result = {**prov, "model_id": model_id, "note": card.note, **trained.report}
    write_training_record(model_id, result)
    return result

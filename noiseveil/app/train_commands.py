"""Training commands: the cloud's classifiers and the scheme models (RIC, EtC) of the zoo."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.classifiers.architectures import build_classifier
from noiseveil.classifiers.training import train_classifier
from noiseveil.crypto.keys import SecretKey
from noiseveil.data import load_dataset
from noiseveil.zoo import CLASSIFIERS, ZooError, check_new_model_id, save_weights


def train_classifier_command(
    model_id: str,
    epochs: int | None,
    checkpoint_dir: Path,
    save_as: str | None = None,
    replace_existing: bool = False,
) -> dict:
    """Train a zoo classifier, ship its weights (as ``save_as`` if given) and write
    ``results/training/<id>.json``. An existing model is only replaced with ``replace_existing``."""
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
    report = train_classifier(model, data, train_cfg, checkpoint_dir / f"{model_id}.ckpt")
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
    write_result(RESULTS_DIR / "training" / f"{model_id}.json", result)
    return result


def train_etc_command(
    model_id: str,
    epochs: int | None,
    checkpoint_dir: Path,
    key: SecretKey | None = None,
    save_as: str | None = None,
    replace_existing: bool = False,
) -> dict:
    """Train an EtC cloud classifier on EtC images of ``key`` (default: the public demo key).

    Architecture, config and TrainConfig are those of the card's plaintext twin, so the
    plain-vs-EtC comparison (the EtC paper's Table II) changes nothing but the input.
    """
    from noiseveil.schemes.etc import EtCScheme, public_demo_key
    from noiseveil.zoo import SCHEME_CARDS

    card = SCHEME_CARDS[model_id]
    twin = CLASSIFIERS[card.classifier_id]
    model_id = save_as or model_id
    check_new_model_id(model_id, replace_existing)
    key = key or public_demo_key(model_id)
    data = load_dataset(card.dataset)
    train_cfg = twin.train if epochs is None else replace(twin.train, epochs=epochs)
    scheme = EtCScheme(model_id, data.image_shape, card.train["block_size"], classifier_id=model_id)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    prov = provenance([data.source_id], [model_id])
    report = scheme.fit(data, twin.arch, twin.config, train_cfg, key, checkpoint_dir / f"{model_id}.ckpt")
    info = {
        "kind": "scheme",
        "scheme": "etc",
        "dataset": card.dataset,
        "classifier_id": model_id,
        "plain_twin": card.classifier_id,
        "arch": twin.arch,
        "block_size": scheme.block_size,
        "key_id": key.key_id,
        "public_demo_key": key.material == public_demo_key(model_id).material,
        "test_accuracy": report["test_accuracy"],
        "train_seconds": report["train_seconds"],
        "command": prov["command"],
        "git_commit": prov["git_commit"],
    }
    save_weights(
        model_id, scheme.payload({"scheme": "etc", "dataset": data.source_id}), info, replace=replace_existing
    )
    params = sum(p.numel() for p in scheme.cloud_classifier().parameters())
    result = {
        **prov,
        "model_id": model_id,
        "note": card.note,
        "arch": twin.arch,
        "block_size": scheme.block_size,
        "key_id": key.key_id,
        "parameters": params,
        "train": asdict(train_cfg),
        **report,
    }
    write_result(RESULTS_DIR / "training" / f"{model_id}.json", result)
    return result


def train_scheme_command(
    model_id: str,
    steps: int | None,
    checkpoint_dir: Path,
    preset: str | None = None,
    save_as: str | None = None,
    key: SecretKey | None = None,
    replace_existing: bool = False,
) -> dict:
    """Train a zoo scheme model and ship it: RIC against its shipped classifier, EtC on EtC images.

    ``steps`` counts training steps for RIC and epochs for EtC. ``preset`` swaps RIC's network
    preset (e.g. "paper": the paper's layer sizes and Adam lr 1e-4); ``save_as`` ships the
    result under another id; ``key`` is the EtC training key (default: the public demo key).
    """
    from noiseveil.schemes.nae import NAEConfig
    from noiseveil.schemes.ric import PRESETS, RIC, RICScheme
    from noiseveil.schemes.ric_training import PRESET_LR, RICTrainConfig, fit_ric, pool_tag
    from noiseveil.zoo import SCHEME_CARDS, load_classifier

    if model_id not in SCHEME_CARDS:
        raise ZooError(f"unknown scheme model {model_id!r}; known: {', '.join(SCHEME_CARDS)}")
    card = SCHEME_CARDS[model_id]
    if card.scheme == "etc":
        if preset is not None:
            raise ZooError("--preset is for RIC models; EtC trains its twin's architecture")
        return train_etc_command(model_id, steps, checkpoint_dir, key, save_as, replace_existing)
    if key is not None:
        raise ZooError("--key is for EtC models; RIC models work with every key")
    if card.preset == "lossless":
        if preset is not None or steps is not None:
            raise ZooError(f"{model_id} (lossless preset) has no networks: --preset and --steps do not apply")
        return ship_lossless_command(card, save_as, replace_existing)
    if preset is not None:
        if preset not in PRESETS:
            raise ZooError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
        card = replace(card, preset=preset, train={**card.train, "lr": PRESET_LR[preset]})
    model_id = save_as or model_id
    check_new_model_id(model_id, replace_existing)
    data = load_dataset(card.dataset)
    classifier = load_classifier(card.classifier_id)
    ric_cfg = replace(PRESETS[card.preset], channels=data.image_shape[2], **card.config)
    train_cfg = RICTrainConfig(**card.train)
    if steps is not None:
        train_cfg = replace(train_cfg, steps=steps)
    scheme = RICScheme(
        model=RIC(ric_cfg),
        classifier=classifier,
        model_id=model_id,
        image_shape=data.image_shape,
        classifier_id=card.classifier_id,
        nae=NAEConfig(**card.nae),
    )
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    prov = provenance([data.source_id], [model_id, card.classifier_id])  # the commit that trains
    report = fit_ric(
        scheme,
        data,
        train_cfg,
        checkpoint_dir / f"{model_id}.ckpt",
        cache_tag=pool_tag(card.classifier_id, scheme),
    )
    final = report["curve"][-1] if report["curve"] else {}
    info = ric_card_info(card, prov, val_psnr=final.get("val_psnr"), train_seconds=report["train_seconds"])
    save_weights(
        model_id,
        scheme.payload(
            {"scheme": card.scheme, "classifier_id": card.classifier_id, "dataset": data.source_id}
        ),
        info,
        replace=replace_existing,
    )
    params = sum(p.numel() for p in scheme.model.parameters())
    result = {
        **prov,
        "model_id": model_id,
        "note": card.note,
        "ric_config": asdict(ric_cfg),
        "parameters": params,
        "nae": asdict(scheme.nae),
        **report,
    }
    write_result(RESULTS_DIR / "training" / f"{model_id}.json", result)
    return result


def ship_lossless_command(card, save_as: str | None = None, replace_existing: bool = False) -> dict:
    """Ship a lossless RIC model: its settings and the id of its cloud classifier, nothing trained."""
    from noiseveil.schemes.nae import DiscreteNAEConfig
    from noiseveil.schemes.ric_lossless import LosslessRICScheme
    from noiseveil.zoo import load_classifier

    model_id = save_as or card.model_id
    check_new_model_id(model_id, replace_existing)
    data = load_dataset(card.dataset)
    scheme = LosslessRICScheme(
        classifier=load_classifier(card.classifier_id),
        model_id=model_id,
        image_shape=data.image_shape,
        classifier_id=card.classifier_id,
        nae=DiscreteNAEConfig(**card.nae),
        **card.config,
    )
    prov = provenance([data.source_id], [model_id, card.classifier_id])
    info = ric_card_info(card, prov, digit_bits=scheme.digit_bits, train_seconds=0.0)
    extra = {"scheme": card.scheme, "dataset": data.source_id}
    save_weights(model_id, scheme.payload(extra), info, replace=replace_existing)
    result = {**prov, "model_id": model_id, "note": card.note, "train_seconds": 0.0, **scheme.payload()}
    write_result(RESULTS_DIR / "training" / f"{model_id}.json", result)
    return result


def ric_card_info(card, prov: dict, **figures) -> dict:
    """The manifest entry of a shipped RIC model: its card, provenance and measured figures."""
    return {
        "kind": "scheme",
        "scheme": card.scheme,
        "dataset": card.dataset,
        "classifier_id": card.classifier_id,
        "preset": card.preset,
        **figures,
        "command": prov["command"],
        "git_commit": prov["git_commit"],
    }

"""Model zoo and registry: named, checksummed weights shipped inside the package.

The registry depends on the schemes, never the reverse: it maps scheme names to their classes
(:data:`SCHEMES`) and model ids to shipped weights, and hands each scheme its cloud classifier.

Every shipped model has a card (what it is, which data trained it, with which settings) and
an entry in ``weights/manifest.json`` (file, SHA-256, size, measured metrics, the command and
commit that produced it). ``load_classifier("cifar10-resnet")`` and ``load_scheme("ric-cifar10")``
verify the checksum before unpickling anything.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from noiseveil.checksums import sha256_file
from noiseveil.classifiers.architectures import build_classifier, classifier_from_payload
from noiseveil.classifiers.imported import (
    IMPORTED_FORMATS,
    check_classifier,
    detect_format,
    imported_classifier,
    module_to_torchscript,
)
from noiseveil.classifiers.preprocessing import Preprocessing
from noiseveil.classifiers.training import TrainConfig
from noiseveil.locations import source_checkout, user_data_home
from noiseveil.schemes.avp import AVPScheme
from noiseveil.schemes.base import CloudModel, Scheme, TrainingPlan, accuracy_figure
from noiseveil.schemes.etc import EtCScheme
from noiseveil.schemes.nae import DiscreteNAEConfig
from noiseveil.schemes.ric import RICScheme
from noiseveil.schemes.ric_lossless import LosslessRICScheme, calibrate_digit_bits
from noiseveil.schemes.transnet import FEATURE_SCALE, TransNetScheme
from noiseveil.shipped import WEIGHTS_DIR, WeightsError, verified_path

# Two zoos: the shipped one (noiseveil.shipped.WEIGHTS_DIR) and the user's own (`noiseveil model
# add`), at $NOISEVEIL_WEIGHTS or a per-user data folder.
MANIFEST = WEIGHTS_DIR / "manifest.json"


def user_zoo_dir() -> Path:
    """The user's zoo: ``$NOISEVEIL_WEIGHTS``, else ``$XDG_DATA_HOME/noiseveil/models`` (default
    ``~/.local/share/noiseveil/models``). Read each time, so a test or a script may point it."""
    if os.environ.get("NOISEVEIL_WEIGHTS"):
        return Path(os.environ["NOISEVEIL_WEIGHTS"])
    return user_data_home() / "models"


class ZooError(WeightsError):
    """An unknown model id, missing weights or a checksum mismatch (one-line message)."""


S = TypeVar("S", bound=Scheme)

# Every scheme by the name its ciphertexts and weights record; a new scheme registers here.
SCHEMES: dict[str, type[Scheme]] = {
    cls.name: cls for cls in (RICScheme, LosslessRICScheme, EtCScheme, AVPScheme, TransNetScheme)
}


@dataclass(frozen=True)
class ClassifierCard:
    model_id: str
    dataset: str
    arch: str
    config: dict[str, Any]
    train: TrainConfig
    shipped: bool = True
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


CLASSIFIERS: dict[str, ClassifierCard] = {
    card.model_id: card
    for card in [
        ClassifierCard(
            "mnist-cnn",
            "mnist",
            "mnist-cnn",
            {"in_channels": 1, "num_classes": 10, "width": 0.5},
            TrainConfig(epochs=6, lr=0.05, augment="crop", batch_size=128),
            note="M5 (5 conv + 1 FC) of An et al. 2020 at half width (paper width: width=1.0)",
        ),
        ClassifierCard(
            "cifar10-resnet",
            "cifar10",
            "resnet",
            {"num_classes": 10, "blocks": (1, 1, 1, 1), "widths": (16, 32, 64, 128)},
            TrainConfig(epochs=12, lr=0.1, augment="crop-flip"),
            note="ResNet-10 with widths 16-128: the CPU-sized stand-in for the paper's ResNet-18",
        ),
        # TransNet's two clouds (its Table I): ψ = ResNet-20 and a VGG-BN, CPU-sized.
        ClassifierCard(
            "cifar10-resnet20",
            "cifar10",
            "resnet",
            {"num_classes": 10, "blocks": (3, 3, 3), "widths": (16, 32, 64)},
            TrainConfig(epochs=8, lr=0.1, augment="crop-flip"),
            note="ResNet-20 (He et al. 2016, the CIFAR variant TransNet's paper uses), 8 epochs",
        ),
        ClassifierCard(
            "cifar10-vgg",
            "cifar10",
            "vgg",
            {"num_classes": 10, "stages": ((32, 32), (64, 64), (128, 128), (256, 256))},
            TrainConfig(epochs=8, lr=0.05, augment="crop-flip"),
            note="VGG-8-BN at half VGG16's widths: the CPU-sized stand-in for TransNet's VGG16-BN",
        ),
        ClassifierCard(
            "cifar10-resnet18",
            "cifar10",
            "resnet",
            {"num_classes": 10, "blocks": (2, 2, 2, 2), "widths": (64, 128, 256, 512)},
            TrainConfig(epochs=30, lr=0.1, augment="crop-flip"),
            shipped=False,
            note="the paper's ResNet-18; too slow to train on 2 CPU cores within budget, so not shipped",
        ),
        # The EtC paper's isotropic networks, scaled to 2 CPU cores (see ISOTROPIC_SCALING).
        # The EtC-trained twins (etc-cifar10-convmixer, etc-cifar10-vit) use the same config
        # and TrainConfig, so plain vs EtC is a like-for-like comparison.
        ClassifierCard(
            "cifar10-convmixer",
            "cifar10",
            "convmixer",
            {"num_classes": 10, "dim": 256, "depth": 8, "patch_size": 4, "kernel_size": 5},
            TrainConfig(epochs=5, lr=0.01, weight_decay=0.01, optimizer="adamw", channels_last=True),
            note="ConvMixer-256/8 with patch 4 and kernel 5 (paper: patch 1, kernel 9, 300 epochs)",
        ),
        ClassifierCard(
            "cifar10-convmixer-256-8",
            "cifar10",
            "convmixer",
            {"num_classes": 10, "dim": 256, "depth": 8, "patch_size": 1, "kernel_size": 9},
            TrainConfig(epochs=300, lr=0.01, weight_decay=0.01, optimizer="adamw", channels_last=True),
            shipped=False,
            note="the EtC paper's ConvMixer-256/8 (patch 1, kernel 9, 300 epochs): far beyond a "
            "2-core budget (results/benchmark/training-step.json), so not shipped",
        ),
        ClassifierCard(
            "cifar10-vit",
            "cifar10",
            "vit",
            {
                "num_classes": 10,
                "image_size": 32,
                "patch_size": 16,
                "dim": 192,
                "depth": 6,
                "heads": 3,
                "mlp_dim": 384,
            },
            TrainConfig(epochs=20, lr=1e-3, weight_decay=0.05, optimizer="adamw"),
            note="ViT-192/6 with patch 16 = EtC block size, from scratch "
            "(paper: ViT-B_16 pre-trained on ImageNet-21k, 224x224 inputs)",
        ),
        ClassifierCard(
            "lfw-resnet",
            "lfw",
            "resnet",
            {"num_classes": 62, "blocks": (1, 1, 1), "widths": (32, 64, 128), "stem_stride": 2},
            TrainConfig(epochs=40, lr=0.05, augment="crop-flip", batch_size=64),
            note="face identity (62 people) on 64x64 LFW crops; stands in for FaceNet",
        ),
        ClassifierCard(
            "svhn-cnn",
            "svhn",
            "svhn-cnn",
            {"num_classes": 10, "n_channel": 32},
            TrainConfig(epochs=20, lr=0.05, augment="crop"),
            shipped=False,
            note="7 conv + 1 FC of pytorch-playground; SVHN is not available here, so not shipped",
        ),
    ]
}


def _trained_longer(card_id: str, epochs: int) -> ClassifierCard:
    """The card's network trained for more epochs, under ``<id>-long``: not shipped, trained
    by `noiseveil train-classifier` (resumable, ``--stop-after`` per session)."""
    card = CLASSIFIERS[card_id]
    note = f"{card_id} trained {epochs} epochs: TransNet's cloud nearer the paper's accuracy"
    return replace(
        card, model_id=f"{card_id}-long", train=replace(card.train, epochs=epochs), shipped=False, note=note
    )


# TransNet's two clouds at the paper budget (91.2 % / 92.2 % after 200 epochs there): 30 epochs,
# about 75 CPU-minutes each here.
CLASSIFIERS.update(
    {c.model_id: c for c in (_trained_longer(m, 30) for m in ("cifar10-resnet20", "cifar10-vgg"))}
)


def _read(manifest: Path) -> dict[str, dict[str, Any]]:
    return json.loads(manifest.read_text()) if manifest.exists() else {}


def read_manifest() -> dict[str, dict[str, Any]]:
    """Every model of both zoos by id; the user's entries say ``"zoo": "user"``."""
    user = {k: {**v, "zoo": "user"} for k, v in _read(user_zoo_dir() / "manifest.json").items()}
    return {**user, **_read(MANIFEST)}  # an id is in one zoo only (model add refuses shipped ids)


def _folder(entry: dict[str, Any]) -> Path:
    return user_zoo_dir() if entry.get("zoo") == "user" else WEIGHTS_DIR


def check_new_model_id(model_id: str, replace: bool = False) -> None:
    """Refuse, before any training, to ship over an existing model unless ``replace`` is given."""
    if model_id in read_manifest() and not replace:
        raise ZooError(
            f"model {model_id!r} exists; ship the new weights under another id (--as ID) "
            "or pass --replace (the old weights stay loadable as ID@SHA)"
        )


def archive_weights(model_id: str, user: bool = False) -> str | None:
    """Keep ``model_id``'s current weights loadable as ``<id>@<sha256[:12]>`` before a replacement."""
    folder = user_zoo_dir() if user else WEIGHTS_DIR
    manifest = _read(folder / "manifest.json")
    entry = manifest.get(model_id)
    if entry is None:
        return None
    archived = f"{model_id}@{entry['sha256'][:12]}"
    old = folder / entry["file"]
    new = folder / f"{archived}{Path(entry['file']).suffix}"
    if old.exists() and not new.exists():
        os.replace(old, new)
    manifest[archived] = {**entry, "file": new.name, "archived_from": model_id}
    _write_manifest(folder / "manifest.json", manifest)
    return archived


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp_manifest = path.with_suffix(".json.tmp")  # readers never see a half-written manifest
    tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_manifest, path)


def save_weights(
    model_id: str,
    payload: dict[str, Any],
    info: dict[str, Any],
    replace: bool = False,
    user: bool | None = None,
) -> Path:
    """Store ``payload`` as ``<model_id>.pt`` in the shipped zoo (or the user's, with ``user``)
    and record its checksum in that zoo's manifest. By default the shipped zoo in a source
    checkout (where models are made to ship) and the user's zoo in an installed wheel (whose
    package folder is not the user's to write).

    An existing model is never overwritten silently: without ``replace`` this raises
    :class:`ZooError`; with it, the old weights are archived (:func:`archive_weights`)."""
    if user is None:
        user = source_checkout() is None
    folder = user_zoo_dir() if user else WEIGHTS_DIR
    return _store(model_id, folder, lambda tmp: torch.save(payload, tmp), ".pt", info, replace)


def store_file(model_id: str, source: Path, info: dict[str, Any], replace: bool = False) -> Path:
    """Copy a model file a user imports (TorchScript, ONNX) into the user's zoo, checksummed."""
    suffix = source.suffix.lower() or ".bin"
    return _store(model_id, user_zoo_dir(), lambda tmp: shutil.copyfile(source, tmp), suffix, info, replace)


def _store(model_id: str, folder: Path, write: Any, suffix: str, info: dict[str, Any], replace: bool) -> Path:
    check_new_model_id(model_id, replace)
    if model_id in _read(MANIFEST) and folder != WEIGHTS_DIR:
        raise ZooError(f"model {model_id!r} is a shipped model: the shipped zoo is read-only")
    archive_weights(model_id, user=folder != WEIGHTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{model_id}{suffix}"
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
    manifest = _read(folder / "manifest.json")
    manifest[model_id] = {
        "file": path.name,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        **info,
    }
    _write_manifest(folder / "manifest.json", manifest)
    return path


def verified_file(model_id: str) -> tuple[Path, dict[str, Any]]:
    """A model's file and manifest entry, after checking the file against its SHA-256."""
    manifest = read_manifest()
    entry = manifest.get(model_id)
    if entry is None:
        shipped = ", ".join(sorted(k for k, v in manifest.items() if v.get("zoo") != "user")) or "none"
        yours = ", ".join(sorted(k for k, v in manifest.items() if v.get("zoo") == "user")) or "none"
        raise ZooError(
            f"no model {model_id!r} in the zoo (shipped: {shipped}; "
            f"added with 'noiseveil model add': {yours})"
        )
    return verified_path(_folder(entry) / entry["file"], entry["sha256"], ZooError), entry


def load_payload(model_id: str) -> dict[str, Any]:
    """Read a model's payload after checking it against the manifest's SHA-256."""
    path, entry = verified_file(model_id)
    if entry.get("format") in IMPORTED_FORMATS:
        raise ZooError(f"{model_id} is an imported {entry['format']} classifier, not a noiseveil payload")
    return torch.load(path, weights_only=False, map_location="cpu")


def classifier_info(model_id: str) -> tuple[tuple[int, int, int] | None, list[str] | None]:
    """A classifier's fixed input shape (None: photos of any size) and its class names."""
    path, entry = verified_file(model_id)
    if entry.get("format") in IMPORTED_FORMATS:
        return None, entry.get("classes")
    payload = torch.load(path, weights_only=False, map_location="cpu")
    shape = payload.get("image_shape")
    return (tuple(shape) if shape is not None else None), payload.get("classes")


def load_classifier(model_id: str, pretrained: bool = True) -> nn.Module:
    """A registered classifier by id, with its weights when ``pretrained`` (a user's imported
    TorchScript or ONNX network comes behind its card's preprocessing)."""
    if pretrained:
        path, entry = verified_file(model_id)
        if entry.get("format") in IMPORTED_FORMATS:
            return imported_classifier(path, entry["format"], Preprocessing.from_dict(entry["preprocessing"]))
        return classifier_from_payload(torch.load(path, weights_only=False, map_location="cpu"))
    if model_id not in CLASSIFIERS:
        raise ZooError(f"unknown classifier {model_id!r}; known: {', '.join(CLASSIFIERS)}")
    card = CLASSIFIERS[model_id]
    return build_classifier(card.arch, **card.config)


@dataclass(frozen=True)
class SchemeCard:
    """A trainable scheme model: which scheme, data, cloud classifier, preset and budget."""

    model_id: str
    scheme: str
    dataset: str
    classifier_id: str
    preset: str
    train: dict[str, Any]
    nae: dict[str, Any] = field(default_factory=dict)  # NAEConfig overrides, tuned per classifier
    note: str = ""
    config: dict[str, Any] = field(default_factory=dict)  # RICConfig overrides of the preset


SCHEME_CARDS: dict[str, SchemeCard] = {
    card.model_id: card
    for card in [
        # RIC's lossless preset (the default): no networks to train, decryption is integer
        # arithmetic. digit_bits = log2(L) is the largest share of each sample the compressed
        # image needs on the bundle's test images; the NAE gets the rest. Settings measured on
        # 128 test images each (first-try label agreement, encryption rate).
        SchemeCard(
            "ric-cifar10",
            "ric-lossless",
            "cifar10",
            "cifar10-resnet",
            "lossless",
            {},
            nae={"lr": 0.5},
            note="RIC, lossless preset: exact recovery, CIFAR-10, the shipped ResNet-10 (L = 64)",
            config={"digit_bits": 6},
        ),
        SchemeCard(
            "ric-lfw",
            "ric-lossless",
            "lfw",
            "lfw-resnet",
            "lossless",
            {},
            nae={"lr": 0.5},
            note="RIC, lossless preset: exact recovery, 64x64 LFW faces, the shipped face model (L = 32)",
            config={"digit_bits": 5},
        ),
        SchemeCard(
            "ric-mnist",
            "ric-lossless",
            "mnist",
            "mnist-cnn",
            "lossless",
            {},
            # The M5 CNN reads strokes: its NAEs need larger steps (first-try agreement 0.93 at lr 1).
            nae={"lr": 2.0},
            note="RIC, lossless preset: exact recovery, MNIST, the shipped M5 CNN (L = 32)",
            config={"digit_bits": 5},
        ),
        SchemeCard(
            "ric-cifar10-masked",
            "ric",
            "cifar10",
            "cifar10-resnet",
            "masked",
            {"steps": 3000, "batch_size": 32, "lr": 1e-4, "pool_per_class": 200},
            nae={"steps": 20, "lr": 0.05, "margin": 15.0},
            note="RIC on CIFAR-10 against the shipped ResNet-10",
        ),
        SchemeCard(
            "ric-lfw-masked",
            "ric",
            "lfw",
            "lfw-resnet",
            "masked",
            {"steps": 800, "batch_size": 16, "lr": 1e-4, "pool_per_class": 24},
            nae={"steps": 20, "lr": 0.05, "margin": 15.0},
            note="RIC on 64x64 LFW faces against the shipped face classifier",
        ),
        SchemeCard(
            "ric-mnist-masked",
            "ric",
            "mnist",
            "mnist-cnn",
            "masked",
            {"steps": 500, "batch_size": 32, "lr": 1e-4, "pool_per_class": 200, "augment": "crop"},
            # Uniform noise of share 0.3 knocks the M5 CNN off a plain NAE (first-try label
            # agreement 0.44 at λ 0.7): λ 0.8 and NAEs attacking the blend bring it to 0.84.
            nae={"steps": 20, "lr": 0.1, "margin": 15.0, "blend_draws": 4},
            note="RIC on MNIST against the shipped M5 CNN",
            # β 100: the M5 CNN's margins pull E hard enough that at β 10 its corrections grew
            # until reconstruction collapsed; re-encryption already handles the label.
            config={"lam": 0.8, "beta": 100.0},
        ),
        # AVP: the model is its settings and a PUBLIC demo key; users train their own secret
        # key with `noiseveil keygen --model avp-...`. Scaled to 2 CPU cores: a 16-filter,
        # 3-block generator (the paper: 64 filters, 9 blocks). The attack settings are the
        # points `noiseveil report avp-sweep` chose as the smallest that reach the paper's
        # figures (results/avp-sweep): the paper's K and μ = 1, with the distance loss L_d
        # (the paper's L_v never hid a face to SSIM_e 0.04 there).
        SchemeCard(
            "avp-lfw",
            "avp",
            "lfw",
            "lfw-resnet",
            "",
            {"steps": 2000, "batch_size": 16, "lr": 2e-3},
            note="AVP on 64x64 LFW faces: keeps the face embedding (eq. 16); key: a trained generator",
            config={
                # the sweep's chosen point: the paper's K = 800 and μ = 1 with L_d at λ 0.03,
                # and the label hinge (κ 1, not in the paper), without which every face point
                # that reaches SSIM_e 0.04 changed a face's label (the self-check refuses it)
                "attack": {
                    "task": "features",
                    "iterations": 800,
                    "step": 0.05,
                    "mu": 1.0,
                    "lam": 0.03,
                    "visual_loss": "distance",
                    "label_weight": 1.0,
                },
                "generator": {"filters": 16, "blocks": 3},
                "promised_psnr": 15.0,
            },
        ),
        SchemeCard(
            "avp-cifar10",
            "avp",
            "cifar10",
            "cifar10-resnet",
            "",
            {"steps": 3000, "batch_size": 32, "lr": 2e-3},
            note="AVP on CIFAR-10: keeps the ResNet-10's class (eq. 17); key: a trained generator",
            config={
                "attack": {
                    "task": "classification",
                    "iterations": 600,
                    "step": 0.05,
                    "mu": 1.0,
                    "lam": 0.01,
                    "visual_loss": "distance",
                },
                "generator": {"filters": 16, "blocks": 3},
                "promised_psnr": 12.0,
            },
        ),
        # TransNet: h_θ trained through the protocol against the cloud's ψ; α = 0.005 is the
        # paper's best (Table I). `noiseveil report transnet` sweeps α for both clouds.
        SchemeCard(
            "transnet-cifar10",
            "transnet",
            "cifar10",
            "cifar10-resnet20",
            "",
            {"alpha": 0.005, "steps": 1500, "batch_size": 64, "lr": 1e-3},
            note="TransNet on CIFAR-10 against ResNet-20: a U-Net 16-32-64 trained with the cloud",
            config={
                "transform": {"widths": (16, 32, 64), "feature_layer": 0, "feature_scale": FEATURE_SCALE}
            },
        ),
        # EtC: the cloud model is trained on EtC images, with the architecture, config and
        # TrainConfig of its plaintext twin (classifier_id), for a like-for-like comparison.
        SchemeCard(
            "etc-cifar10-convmixer",
            "etc",
            "cifar10",
            "cifar10-convmixer",
            "",
            {"block_size": 16},
            note="ConvMixer trained on EtC CIFAR-10 (block 16) for the public demo key",
        ),
        SchemeCard(
            "etc-cifar10-vit",
            "etc",
            "cifar10",
            "cifar10-vit",
            "",
            {"block_size": 16},
            note="ViT (patch 16 = block 16) trained on EtC CIFAR-10 for the public demo key",
        ),
    ]
}


def training_plan(card: SchemeCard, image_shape: tuple[int, int, int], **overrides: Any) -> TrainingPlan:
    """What ``noiseveil train`` asks the card's scheme to train; ``overrides`` are the user's
    (``model_id``, ``preset``, ``budget``, ``key``)."""
    twin = CLASSIFIERS.get(card.classifier_id)
    recipe = {"arch": twin.arch, "config": twin.config, "train": twin.train} if twin else {}
    preset = overrides.pop("preset", None)
    return TrainingPlan(
        model_id=overrides.pop("model_id", None) or card.model_id,
        image_shape=tuple(image_shape),
        classifier_id=card.classifier_id,
        classifier_recipe=recipe,
        preset=preset or card.preset,
        preset_override=preset is not None,
        config=card.config,
        train=card.train,
        nae=card.nae,
        **overrides,
    )


def model_figure(entry: dict[str, Any]) -> str:
    """The figure that represents a zoo entry (``noiseveil models``): a scheme model's is its
    scheme's to say (:meth:`~noiseveil.schemes.base.Scheme.figure`); a classifier's is its test
    accuracy, or, for a card that takes photos of any size, its classes and input pipeline."""
    if entry["kind"] == "scheme" and entry.get("scheme") in SCHEMES:
        return SCHEMES[entry["scheme"]].figure(entry)
    if "test_accuracy" in entry:
        return accuracy_figure(entry)
    if entry.get("preprocessing"):
        classes = len(entry.get("classes") or []) or entry.get("classes_count", "?")
        pipeline = Preprocessing.from_dict(entry["preprocessing"]).describe()
        return f"{classes} classes, photos of any size: {pipeline}"
    return f"(classifier {entry.get('classifier_id', '-')})"


def shipped_schemes() -> list[str]:
    """Model ids of the shipped scheme models (not classifiers, not the user's, not the
    replaced ones: ``ID@SHA`` stays loadable for what it made, but is no model to use)."""
    return [m for m in scheme_models() if read_manifest()[m].get("zoo") != "user"]


def scheme_models() -> list[str]:
    """Model ids of every current scheme model of both zoos: the shipped ones and the user's."""
    return sorted(
        k for k, v in read_manifest().items() if v.get("kind") == "scheme" and "archived_from" not in v
    )


def load_scheme(
    model_id: str,
    classifier: nn.Module | None = None,
    classifier_id: str | None = None,
    of_class: type[S] = Scheme,  # type: ignore[assignment]
) -> S:
    """A shipped scheme model by id, with its cloud classifier; ``classifier`` (recorded in
    ciphertexts as ``classifier_id``) replaces the one it was trained with. ``of_class`` is
    for code that studies one scheme (a paper's report): another scheme's model is refused."""
    payload = load_payload(model_id)
    scheme_name = payload.get("scheme")
    if scheme_name not in SCHEMES:
        kind = payload.get("kind") or read_manifest().get(model_id, {}).get("kind", "model of no known kind")
        raise ZooError(f"{model_id!r} is a {kind}, not a scheme model (see 'noiseveil models')")
    if not issubclass(SCHEMES[scheme_name], of_class):
        raise ZooError(f"{model_id} is a {scheme_name} model, not a {of_class.__name__} one")
    if classifier is not None and classifier_id is None:
        raise ZooError("a custom classifier needs a classifier id to record in ciphertexts")
    scheme = SCHEMES[scheme_name].from_payload(
        payload,
        model_id,
        classifier if classifier is not None else shipped_classifier(payload),
        classifier_id,
    )
    promised = read_manifest()[model_id].get("promised_psnr")
    if promised is not None:  # a learned decoder's per-image floor, measured when it shipped
        scheme.promised_psnr = float(promised)
    return scheme


def shipped_classifier(payload: dict[str, Any]) -> CloudModel | None:
    """How to load the shipped cloud classifier a scheme payload names (when first needed);
    None for a scheme that ships its cloud model inside its own payload (EtC)."""
    classifier_id = payload.get("classifier_id")
    if classifier_id is None:
        return None
    return lambda: load_classifier(classifier_id)


# -- a user's own classifier --------------------------------------------------------------
def lossless_ric_id(classifier_id: str) -> str:
    """The id of the lossless RIC model ``model add`` makes on a classifier."""
    return f"ric-{classifier_id}"


def add_lossless_ric(
    model_id: str,
    classifier_id: str,
    classifier: CloudModel,
    calibration: dict[str, Any] | None,
    *,
    digit_bits: int | None = None,
    nae: dict[str, Any] | None = None,
    user: bool = True,
    replace: bool = False,
    info: dict[str, Any] | None = None,
) -> Path:
    """Store a lossless RIC model (settings only) on ``classifier_id``, for photos of any size.

    Its digit split b is ``digit_bits`` if given, else the one ``calibration``
    (:func:`~noiseveil.schemes.ric_lossless.calibrate_digit_bits`) measured, else 6."""
    bits = digit_bits or (calibration or {}).get("digit_bits") or 6
    scheme = LosslessRICScheme(
        classifier=classifier,
        model_id=model_id,
        image_shape=None,
        classifier_id=classifier_id,
        digit_bits=bits,
        nae=DiscreteNAEConfig(**(nae or {})),
    )
    entry = {
        "kind": "scheme",
        "scheme": LosslessRICScheme.name,
        "dataset": None,
        "classifier_id": classifier_id,
        "preset": "lossless",
        "digit_bits": bits,
        "digit_bits_from": "given" if digit_bits else ("calibration" if calibration else "default"),
        "calibration": calibration,
        "train_seconds": 0.0,
        **(info or {}),
    }
    payload = scheme.payload({"scheme": LosslessRICScheme.name, "dataset": None})
    return save_weights(model_id, payload, entry, replace=replace, user=user)


def add_classifier(
    model_id: str,
    source: Path | nn.Module,
    preprocessing: Preprocessing,
    classes: list[str],
    *,
    calibration_images: Iterable[tuple[str, np.ndarray]] = (),
    digit_bits: int | None = None,
    nae: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Import a classifier into the user's zoo with a lossless RIC model on it; returns their ids.

    ``source`` is a TorchScript or ONNX file, or an ``nn.Module`` (traced to TorchScript, so the
    zoo holds a file that loads without the user's code). The network is checked
    (:func:`~noiseveil.classifiers.imported.check_classifier`) before anything is written;
    ``calibration_images`` (name, uint8 HxWxC) measure the RIC model's digit split."""
    ric_id = lossless_ric_id(model_id)
    settings = {"calibration_images": calibration_images, "digit_bits": digit_bits, "nae": nae, "info": info}
    manifest = read_manifest()
    for mid in (model_id, ric_id):
        if mid in manifest and manifest[mid].get("zoo") != "user":
            raise ZooError(f"{mid!r} is a shipped model (the shipped zoo is read-only): choose another id")
        if mid in manifest:
            raise ZooError(
                f"{mid!r} exists in your zoo ({user_zoo_dir()}), never overwritten: choose another id"
            )
    if not isinstance(source, nn.Module):
        settings["where"] = str(source)  # errors name the user's file
        _import_file(model_id, ric_id, Path(source), Path(source).name, preprocessing, classes, settings)
        return model_id, ric_id
    with tempfile.TemporaryDirectory(prefix="noiseveil-import-") as tmp:  # the zoo keeps its own copy
        traced = Path(tmp) / "module.pt"
        module_to_torchscript(source, preprocessing, traced)
        settings["where"] = type(source).__name__  # errors name the module, not the temporary file
        _import_file(model_id, ric_id, traced, type(source).__name__, preprocessing, classes, settings)
    return model_id, ric_id


def _import_file(
    model_id: str,
    ric_id: str,
    path: Path,
    origin: str,
    preprocessing: Preprocessing,
    classes: list[str],
    settings: dict[str, Any],
) -> None:
    """Check the network in ``path``, then store it and the lossless RIC model on it."""
    fmt = detect_format(path)
    classifier = imported_classifier(path, fmt, preprocessing)
    check_classifier(classifier, classes, settings["where"])
    images = settings["calibration_images"]
    calibration = calibrate_digit_bits(images) if images else None
    card = {
        "kind": "classifier",
        "format": fmt,
        "dataset": None,
        "origin": origin,
        "preprocessing": preprocessing.to_dict(),
        "classes": list(classes),
        **(settings["info"] or {}),
    }
    store_file(model_id, path, card)
    add_lossless_ric(
        ric_id,
        model_id,
        classifier,
        calibration,
        digit_bits=settings["digit_bits"],
        nae=settings["nae"],
        info=settings["info"],
    )

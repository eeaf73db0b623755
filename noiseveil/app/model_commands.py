"""``noiseveil model add``: protect the classifier a user already has.

The classifier (TorchScript or ONNX) goes into the user's zoo with its card (weights' SHA-256,
labels, input pipeline), beside a lossless RIC model on it whose digit split is measured on the
user's own sample photos (``--calibrate``). Everything is checked before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from noiseveil.app.exit_codes import EXIT_OK
from noiseveil.app.provenance import provenance
from noiseveil.classifiers.imported import ClassifierImportError
from noiseveil.classifiers.preprocessing import PRESETS, Preprocessing
from noiseveil.data import DataError, load_photos
from noiseveil.zoo import add_classifier, read_manifest, user_zoo_dir


def read_labels(path: Path) -> list[str]:
    """One class name per line, in the network's output order (trailing blank lines ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err
        raise ClassifierImportError(f"{path}: cannot read the labels file ({reason})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ClassifierImportError(f"{path}: no labels (one class name per line, in output order)")
    blank = [i for i, line in enumerate(lines, 1) if not line.strip()]
    if blank:
        raise ClassifierImportError(f"{path}, line {blank[0]}: a blank label (one class name per line)")
    return [line.strip() for line in lines]


def preprocessing_from(args: argparse.Namespace) -> Preprocessing:
    """The card's pipeline: the preset's settings, then every option given explicitly."""
    settings = dict(PRESETS[args.preset]) if args.preset else {}
    if args.input_size is not None:
        h, w = (args.input_size * 2)[:2] if len(args.input_size) == 1 else args.input_size[:2]
        settings["input_size"] = (h, w)
    if "input_size" not in settings:
        raise ClassifierImportError("the network's input size is needed: --input-size N or --preset NAME")
    channels = args.channels or settings.get("channels", 3)
    settings.setdefault("mean", (0.0,) * channels)
    settings.setdefault("std", (1.0,) * channels)
    explicit = {
        "resize": args.resize,
        "crop": args.crop,
        "mean": tuple(args.mean) if args.mean else None,
        "std": tuple(args.std) if args.std else None,
        "channel_order": args.channel_order,
        "channels": args.channels,
        "interpolation": args.interpolation,
    }
    settings.update({k: v for k, v in explicit.items() if v is not None})
    return Preprocessing(**settings)


def _sample_photos(folder: Path) -> Iterator[tuple[str, np.ndarray]]:
    """The calibration photos, read only once the classifier has passed its checks."""
    print(f"model add: measuring the digit split on the photos in {folder} ...", file=sys.stderr, flush=True)
    yield from load_photos(folder)


def cmd_model(args: argparse.Namespace) -> int:
    preprocessing = preprocessing_from(args)
    classes = read_labels(args.labels)
    samples = _sample_photos(args.calibrate) if args.calibrate is not None else ()
    if args.calibrate is not None and not args.calibrate.is_dir():
        raise DataError(f"{args.calibrate}: not a folder of sample images")
    prov = provenance([str(args.calibrate)] if args.calibrate else [], [args.id])
    info = {"command": prov["command"], "date": prov["date"], "git_commit": prov["git_commit"]}
    classifier_id, ric_id = add_classifier(
        args.id,
        args.classifier,
        preprocessing,
        classes,
        calibration_images=samples,
        digit_bits=args.digit_bits,
        info=info,
    )
    ric = read_manifest()[ric_id]
    how = {
        "calibration": f"measured on {(ric.get('calibration') or {}).get('images')} sample photos",
        "given": "as given",
        "default": "the default; measure it on your photos with --calibrate DIR",
    }[ric["digit_bits_from"]]
    print(f"added {classifier_id}: {len(classes)} classes, {preprocessing.describe()}")
    print(f"added {ric_id}: lossless RIC for photos of any size, b = {ric['digit_bits']} ({how})")
    print(f"in {user_zoo_dir()}; encrypt with: noiseveil encrypt PHOTOS -o CIPHER -k KEY -m {ric_id}")
    return EXIT_OK

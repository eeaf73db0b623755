"""What the commands share: opening a scheme or the cloud's model by id (or from a TorchScript
file), the key a command encrypts with, and how a file run reports its outcome.

The CLI's handlers (:mod:`noiseveil.app.commands` and the ``*_commands`` modules it gathers), the
Ray workers (:mod:`noiseveil.app.distributed`) and the cloud service (:mod:`noiseveil.app.service`)
all import these from here, and this module imports none of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch import nn

from noiseveil.app.exit_codes import EXIT_FAILED_FILES, EXIT_OK
from noiseveil.checksums import sha256_file
from noiseveil.classifiers.architectures import freeze
from noiseveil.crypto.keys import Key, KeyFileError
from noiseveil.io.png import EXISTS
from noiseveil.pipeline import Report
from noiseveil.schemes.base import Scheme
from noiseveil.zoo import ZooError, classifier_info, load_classifier, load_payload, load_scheme, read_manifest

LEFT_OUT_NAMED = 5  # files named in the "left out" line; the rest are counted


def load_torchscript(path: Path) -> tuple[nn.Module, str]:
    """A TorchScript classifier and the id ciphertexts record for it (hash of the file)."""
    import zipfile

    if not path.is_file():
        raise ZooError(f"{path}: no such TorchScript file")
    if not zipfile.is_zipfile(path):  # what torch.jit.save writes; anything else gets reader internals
        raise ZooError(f"{path}: not a TorchScript model (save one with torch.jit.save)")
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, OSError, ValueError):
        raise ZooError(f"{path}: not a TorchScript model (torch.jit.load cannot read it)") from None
    return freeze(model), "torchscript:" + sha256_file(path)[:16]


def open_scheme(model_id: str, classifier_file: Path | None) -> Scheme:
    if classifier_file is None:
        return load_scheme(model_id)
    classifier, classifier_id = load_torchscript(classifier_file)
    return load_scheme(model_id, classifier=classifier, classifier_id=classifier_id)


def finish(report: Report, resumable: bool = False) -> int:
    """Print each failure on one line, then a summary; exit status 1 if anything failed. A
    ``resumable`` run (one without --skip-existing) says once how to leave existing outputs."""
    for path, reason in report.failures:
        reason = reason if reason.startswith(str(path)) else f"{path}: {reason}"
        print(f"FAILED {reason}", file=sys.stderr)
    existing = sum(reason.endswith(EXISTS) for _, reason in report.failures)
    if resumable and existing:
        them = "it as it is" if existing == 1 else "them as they are"
        outputs = "1 output exists" if existing == 1 else f"{existing} outputs exist"
        print(f"{outputs} already: --skip-existing leaves {them} and does the rest", file=sys.stderr)
    print(report.summary(), file=sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED_FILES


def schemes_by_id(classifier_file: Path | None) -> Callable[[str], Scheme]:
    """Each ciphertext's scheme by the model id it names, loaded once (decryption)."""
    return cache(lambda model_id: open_scheme(model_id, classifier_file))


def say_left_out(action: str, source: Path, others: list[Path]) -> int:
    """Name, in one line on stderr, the files of the input folder that are not images (once
    the command is sure to run); returns how many."""
    if others:
        shown = [str(p.relative_to(source)) for p in others[:LEFT_OUT_NAMED]]
        more = f" and {len(others) - len(shown)} more" if len(others) > len(shown) else ""
        what = (
            "file that is not a PNG or JPEG image"
            if len(others) == 1
            else "files that are not PNG or JPEG images"
        )
        print(f"{action}: left out {len(others)} {what}: {', '.join(shown)}{more}", file=sys.stderr)
    return len(others)


def key_for(scheme: Scheme, path: Path | None) -> Key:
    """The key to encrypt with: the file given, or none for a keyless scheme (and only then)."""
    keyless = scheme.capabilities.key is None
    if path is None and not keyless:
        raise KeyFileError(
            f"model {scheme.model_id} needs a key: -k KEY (make one with 'noiseveil keygen --model "
            f"{scheme.model_id} KEY')"
        )
    if path is not None and keyless:
        raise KeyFileError(f"model {scheme.model_id} is keyless: -k does not apply")
    return scheme.keygen() if keyless else scheme.load_key(path)


@dataclass(frozen=True)
class CloudModel:
    """What the cloud runs for a model id: a classifier, or a scheme model's cloud classifier
    (RIC: the plaintext model it keeps labels for; EtC: the model trained on its ciphertexts)."""

    model_id: str
    classifier: nn.Module
    image_shape: tuple[int, int, int] | None
    classes: list[str] | None
    any_size: bool = False  # a classifier card's pipeline takes photos of every size


def cloud_model(model_id: str, scheme: Scheme | None = None) -> CloudModel:
    """The cloud's model for ``model_id``, applying the card's input pipeline if it has one; a
    scheme model's ``scheme``, if already loaded, is reused rather than loaded again."""
    entry = read_manifest().get(model_id)
    if entry is None:
        load_payload(model_id)  # raises the zoo's one-line "no model" error
    if entry["kind"] == "classifier":
        shape, classes = classifier_info(model_id)
        return CloudModel(model_id, load_classifier(model_id), shape, classes, any_size=shape is None)
    scheme = scheme or load_scheme(model_id)
    # A classifier that knows the class names: EtC's plaintext twin, RIC's cloud classifier.
    named_by = entry.get("plain_twin") or entry.get("classifier_id")
    is_classifier = read_manifest().get(named_by, {}).get("kind") == "classifier"
    classes = classifier_info(named_by)[1] if is_classifier else None
    shape = scheme.image_shape
    return CloudModel(model_id, scheme.cloud_classifier(), shape, classes, any_size=shape is None)


def torchscript_cloud(path: Path) -> CloudModel:
    """A TorchScript classifier as the cloud's model (no fixed image shape, no class names)."""
    classifier, model_id = load_torchscript(path)
    return CloudModel(model_id, classifier, None, None)


def format_table(rows: list[dict[str, str]]) -> str:
    cols = list(rows[0])
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in cols]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))  # noqa: E731
    return "\n".join(
        [line(cols), line(["-" * w for w in widths]), *(line([r[c] for c in cols]) for r in rows)]
    )

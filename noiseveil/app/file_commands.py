"""`noiseveil encrypt`, `decrypt` and `classify`: a folder (or a list of files) through the file
pipeline, here, on worker processes or on Ray."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from noiseveil.app.distributed import Job
from noiseveil.app.services import (
    CloudModel,
    cloud_model,
    finish,
    key_for,
    open_scheme,
    say_left_out,
    schemes_by_id,
    torchscript_cloud,
)
from noiseveil.crypto.keys import Key, KeyFileError, NoKey, load_key
from noiseveil.data import DataError, read_image
from noiseveil.exceptions import NoiseveilError
from noiseveil.io.png import CiphertextFileError, read_ciphertext
from noiseveil.pipeline import (
    Report,
    classify_files,
    decrypt_files,
    encrypt_files,
    left_out,
    plan,
    plan_listed,
    without_existing_outputs,
)


def cmd_encrypt(args: argparse.Namespace) -> int:
    scheme = open_scheme(args.model, args.classifier)
    key = key_for(scheme, args.key)
    nae = nae_changes(args)
    if nae:
        scheme = scheme.with_nae(**dict(nae))
    scheme.publish_key_id = not args.no_key_id
    pairs, skipped, others = pending_pairs(args)
    scheme.check_key(key)  # refused here, before any batch (or Ray task) starts
    left = say_left_out(args.command, args.input, others)
    job = Job("encrypt", args.model, args.classifier, nae, not args.no_key_id)
    report = here_or_elsewhere(
        args, job, key, pairs, lambda: encrypt_files(scheme, key, pairs, args.batch_size, not args.quiet)
    )
    report.skipped, report.left_out = skipped, left
    return finish(report, resumable=not args.skip_existing)


def nae_changes(args: argparse.Namespace) -> tuple[tuple[str, object], ...]:
    """The NAE settings the command line changes, as (name, value) pairs (a Job carries them)."""
    changes: dict[str, object] = {}
    if args.nae_steps is not None:
        changes["steps"] = args.nae_steps
    if args.cold_start:
        changes["warm_start"] = False
    return tuple(changes.items())


def here_or_elsewhere(
    args: argparse.Namespace, job: Job, key: Key | None, items: list, here: Callable[[], Report]
) -> Report:
    """``here()`` in this process, or the same batches on worker processes (``--processes``)
    or as Ray tasks (``--ray``)."""
    if args.ray is not None:
        from noiseveil.app.distributed import run_on_ray

        return run_on_ray(job, key, items, args.batch_size, args.ray or None, progress=not args.quiet)
    if args.processes > 1 and len(items) > args.batch_size:  # one batch: no worker would share it
        from noiseveil.app.distributed import run_in_processes

        return run_in_processes(job, key, items, args.batch_size, args.processes, progress=not args.quiet)
    return here()


def pending_pairs(args: argparse.Namespace) -> tuple[list[tuple[Path, Path]], int, list[Path]]:
    """(input, output) pairs to do, how many --skip-existing left alone, and the files of the
    input that are not images (for :func:`say_left_out`)."""
    pairs, others = planned(args, args.output)
    todo, skipped = without_existing_outputs(pairs) if args.skip_existing else (pairs, 0)
    return todo, skipped, others


def planned(
    args: argparse.Namespace, output: Path | None
) -> tuple[list[tuple[Path, Path | None]], list[Path]]:
    """The input folder or file, or only the files ``--files-from`` lists inside the folder;
    and the files of the folder left out for not being images (none for a list)."""
    if args.files_from is not None:
        return plan_listed(args.input, read_file_list(args.files_from), output), []
    pairs = plan(args.input, output, folder=getattr(args, "output_is_folder", False))
    return pairs, left_out(args.input, output)


def read_file_list(path: Path) -> list[str]:
    """The list's lines, one path each ('-': standard input)."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err
        raise DataError(f"{path}: cannot read the file list ({reason})") from None
    return text.splitlines()


def cmd_decrypt(args: argparse.Namespace) -> int:
    # Each ciphertext's scheme checks that it can use the key; without -k, only keyless images
    # are read, and those say they do not decrypt.
    key = load_key(args.key) if args.key is not None else NoKey()
    pairs, skipped, others = pending_pairs(args)
    if args.key is None:
        refuse_keyed_without_key(pairs)
    left = say_left_out(args.command, args.input, others)
    job = Job("decrypt", classifier_file=args.classifier)
    schemes = schemes_by_id(args.classifier)
    report = here_or_elsewhere(
        args, job, key, pairs, lambda: decrypt_files(schemes, key, pairs, args.batch_size, not args.quiet)
    )
    report.skipped, report.left_out = skipped, left
    return finish(report, resumable=not args.skip_existing)


def refuse_keyed_without_key(pairs: list[tuple[Path, Path]]) -> None:
    """decrypt without -k: refused once, before any work, when a file to decrypt was made with
    a key (its header carries a tag), as encrypt refuses; a keyless model's images (TransNet's)
    need none and say on their own that they do not decrypt. Unreadable files fail later, each
    on its FAILED line."""
    for src, _ in pairs:
        try:
            authenticated = read_ciphertext(src).authenticated
        except NoiseveilError:
            continue
        if authenticated:
            raise KeyFileError(f"{src} was encrypted with a key: -k KEY, the key file it was encrypted with")


def cmd_classify(args: argparse.Namespace) -> int:
    if args.json is not None and args.json.exists():
        raise CiphertextFileError(f"{args.json}: exists; refusing to overwrite")
    pairs, others = planned(args, None)
    files = [src for src, _ in pairs]
    if args.classifier is not None:
        cloud = torchscript_cloud(args.classifier)  # the first readable image sets the shape
        groups = {cloud.model_id: (cloud, files)}
        unread = Report("classify")
    elif args.model is not None:
        groups, unread = {args.model: (cloud_model(args.model), files)}, Report("classify")
    else:
        groups, unread = models_named_in(files)
    left = say_left_out(args.command, args.input, others)  # the classifier is loaded: it runs
    report, rows = unread, []
    for model_id, (cloud, group) in groups.items():
        part = classify_group(args, model_id, cloud, group)
        report.absorb(part)
        rows += [
            {
                "file": str(f),
                "label": label,
                "class": cloud.classes[label] if cloud.classes else str(label),
                "classifier": cloud.model_id,
            }
            for f, label in part.results
        ]
    report.left_out = left
    for row in rows:
        print(f"{row['file']}\t{row['label']}\t{row['class']}")
    if args.json is not None:
        with open(args.json, "x") as f:
            json.dump({"classifier": ", ".join(groups), "predictions": rows}, f, indent=2)
    return finish(report)


def classify_group(args: argparse.Namespace, model_id: str, cloud: CloudModel, files: list[Path]) -> Report:
    """Classify one model's files, in this process, on worker processes or as Ray tasks."""

    def here() -> Report:
        return classify_files(
            cloud.classifier, cloud.image_shape, files, args.batch_size, not args.quiet, cloud.any_size
        )

    # Elsewhere, every batch checks against the shape one process would take: the first readable image's.
    fixed = cloud.image_shape or cloud.any_size
    elsewhere = args.ray is not None or args.processes > 1
    shape = cloud.image_shape or (first_readable_shape(files) if elsewhere and not fixed else None)
    job = Job("classify", None if args.classifier else model_id, args.classifier, image_shape=shape)
    return here_or_elsewhere(args, job, None, files, here)


def first_readable_shape(files: list[Path]) -> tuple[int, int, int] | None:
    for f in files:
        try:
            return read_image(f, channels=None).shape
        except NoiseveilError:
            continue
    return None


def models_named_in(files: list[Path]) -> tuple[dict[str, tuple[CloudModel, list[Path]]], Report]:
    """Group ciphertext files by the model their header names (classify without -m); a file
    that is not a ciphertext, or names a model that is not here, fails with one line."""
    report, named = Report("classify"), {}
    for path in files:
        try:
            named.setdefault(read_ciphertext(path).decrypt_model, []).append(path)
        except CiphertextFileError as err:
            report.fail(path, f"{err}; to classify plain images, name the classifier with -m")
    groups = {}
    for model_id, group in named.items():
        try:
            groups[model_id] = (cloud_model(model_id), group)
        except NoiseveilError as err:
            for path in group:
                report.fail(path, err)
    return groups, report

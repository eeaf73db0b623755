"""Files in, files out: streaming encryption, classification and decryption of folders.

Folders are processed in chunks of ``batch_size`` images, cut further so that no more than
:data:`SAMPLE_BUDGET` samples are decoded at once (large photos go one at a time), so memory
stays flat whatever the folder holds; images of different sizes are batched by size. Each
file that cannot be processed is recorded with a one-line reason and the run goes on;
nothing existing is ever overwritten (outputs are opened with "x").
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from noiseveil.crypto.keys import SecretKey
from noiseveil.data import DataError, load_image_folder, non_image_files, read_image, to_tensor
from noiseveil.exceptions import NoiseveilError
from noiseveil.io.png import (
    EXISTS,
    CiphertextFileError,
    ciphertext_to_bytes,
    image_to_bytes,
    read_ciphertext,
    write_new_file,
)
from noiseveil.progress import progress_bar
from noiseveil.schemes.base import (
    RECOVERY_FIELD,
    RECOVERY_PSNR_FIELD,
    Ciphertext,
    EncryptionError,
    Scheme,
    SchemeError,
    same_shape_groups,
)
from noiseveil.threads import SharedPool


@dataclass
class Report:
    """What a run did: files done, files failed (with reasons), and how long it took."""

    action: str
    done: int = 0
    failures: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    results: list[tuple[Path, int]] = field(default_factory=list)  # classify: (file, label)
    lossy: list[tuple[Path, float]] = field(default_factory=list)  # (file, PSNR dB) not bit-exact
    skipped: int = 0  # outputs already there, left alone (--skip-existing)
    left_out: int = 0  # files of the input folder that are not images (named by the caller)

    def fail(self, path: Path, err: Exception | str) -> None:
        self.failures.append((path, str(err)))

    def note_recovery(self, path: Path, ct: Ciphertext) -> None:
        """Record a file whose ciphertext promises a lossy recovery (its header says so)."""
        if ct.fields.get(RECOVERY_FIELD) == "lossy":
            self.lossy.append((path, float(ct.fields[RECOVERY_PSNR_FIELD])))

    def absorb(self, other: Report) -> None:
        """Add another run's files, failures, results and time to this report."""
        self.done += other.done
        self.failures += other.failures
        self.results += other.results
        self.lossy += other.lossy
        self.skipped += other.skipped
        self.left_out += other.left_out
        self.seconds += other.seconds

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line whose counts add up: done + failed + already done = the files of the run."""
        total = self.done + len(self.failures) + self.skipped
        rate = f", {self.done / self.seconds:.1f} images/s" if self.seconds > 0 and self.done else ""
        lossy = ""
        if self.lossy:
            worst = min(p for _, p in self.lossy)
            lossy = f", {len(self.lossy)} recovered lossy (not bit-exact; worst {worst:.2f} dB)"
        skipped = f", {self.skipped} already done (skipped)" if self.skipped else ""
        what = "an image" if self.left_out == 1 else "images"
        left_out = f", {self.left_out} not {what} (left out)" if self.left_out else ""
        return (
            f"{self.action}: {self.done} of {total} files done, {len(self.failures)} failed"
            f"{skipped}{left_out}{lossy}{rate}"
        )


def mirrored(relative: Path, target: Path) -> Path:
    """Where the output of the input at ``relative`` (inside a folder) goes under ``target``."""
    return Path(target) / relative.with_suffix(".png")


def plan(source: Path, target: Path | None, folder: bool = False) -> list[tuple[Path, Path | None]]:
    """Pairs (input file, output file); a folder's output mirrors its tree under ``target``,
    and what is under ``target`` when that is inside the folder is output, not input. A file's
    output is ``target`` itself, or ``target/NAME.png`` if ``target`` is a folder: one that
    exists, or one to make (``folder``: it was written with a trailing slash)."""
    source = Path(source)
    if source.is_dir():
        files = _outside_output(source, load_image_folder(source)[0], target)
        if target is None:
            return [(f, None) for f in files]
        return [(f, mirrored(f.relative_to(source), target)) for f in files]
    if not source.exists():
        raise DataError(f"{source}: no such file or folder")
    if target is not None and (folder or Path(target).is_dir()):
        return [(source, Path(target) / (source.stem + ".png"))]
    return [(source, target)]


def left_out(source: Path, target: Path | None) -> list[Path]:
    """The files of the folder ``source`` that :func:`plan` leaves out for not being images
    (none for a file); those under the output folder ``target`` are not counted."""
    source = Path(source)
    return _outside_output(source, non_image_files(source), target) if source.is_dir() else []


def output_inside(source: Path, target: Path | None) -> tuple[str, ...] | None:
    """The output folder's path components inside the input folder, or None if it is not
    inside; the input folder itself as output is refused (outputs would land on inputs)."""
    if target is None:
        return None
    try:
        inside = Path(target).resolve().relative_to(Path(source).resolve()).parts
    except ValueError:
        return None
    if not inside:
        raise DataError(f"{target}: the output folder is the input folder; name another")
    return inside


def _outside_output(source: Path, files: list[Path], target: Path | None) -> list[Path]:
    """``files`` of the folder ``source`` less those under ``target`` (an earlier run's outputs)."""
    inside = output_inside(source, target)
    if inside is None:
        return files
    kept = [f for f in files if f.relative_to(source).parts[: len(inside)] != inside]
    if files and not kept:
        raise DataError(f"{source}: no PNG or JPEG files outside the output folder {target}")
    return kept


def plan_listed(source: Path, names: Sequence[str], target: Path | None) -> list[tuple[Path, Path | None]]:
    """Pairs for the files ``names`` lists, each a path relative to the folder ``source``;
    outputs mirror those paths under ``target`` as for a whole folder; blank names are
    skipped (``names`` may be a file's lines, numbered from 1). A listed file that is missing
    fails when it is read, as an unreadable one does; a name that would leave
    ``source`` (absolute, or through ``..``) is refused here, before any work."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"{source}: not a folder (a file list names files relative to a folder)")
    inside = output_inside(source, target)
    pairs: dict[Path, Path | None] = {}
    for number, name in enumerate(names, 1):
        if not name.strip():  # blank lines, as in a hand-edited list
            continue
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise DataError(f"file list, line {number}: {name!r} is not a path inside {source}")
        if inside is not None and relative.parts[: len(inside)] == inside:
            raise DataError(f"file list, line {number}: {name!r} is in the output folder {target}")
        out = None if target is None else mirrored(relative, target)
        pairs.setdefault(source / relative, out)  # a name listed twice is done once
    return list(pairs.items())


def without_existing_outputs(pairs: Sequence[tuple[Path, Path]]) -> tuple[list[tuple[Path, Path]], int]:
    """The pairs whose output is not there yet, and how many are (a rerun's finished work:
    outputs are written atomically, so an existing one is complete)."""
    todo = [(src, dst) for src, dst in pairs if not dst.exists()]
    # What a killed writer left (write_image's temporary ".NAME.*.tmp"): one listing per folder,
    # not one per missing output, which would be quadratic in a large folder.
    missing: dict[Path, set[str]] = {}
    for _, dst in todo:
        missing.setdefault(dst.parent, set()).add(dst.name)
    for folder, names in missing.items():
        for stale in folder.glob(".*.tmp"):
            if stale.name[1:].rsplit(".", 2)[0] in names:
                stale.unlink(missing_ok=True)
    return todo, len(pairs) - len(todo)


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Claims:
    """Refuses early, before any work on it, an output that existed when the run began (the
    final write also refuses an existing file, atomically). Each folder is listed once: a stat
    per file cost 0.1-0.3 ms here while the writer thread was creating files in that folder
    (ad hoc profile of 2,000 32x32 decryptions), against about 0.3 ms to decrypt one."""

    def __init__(self) -> None:
        self._names: dict[Path, set[str]] = {}

    def __call__(self, dst: Path) -> None:
        names = self._names.get(dst.parent)
        if names is None:  # before this run writes into the folder: its outputs are claimed first
            try:
                names = set(os.listdir(dst.parent))
            except (FileNotFoundError, NotADirectoryError):
                names = set()
            self._names[dst.parent] = names
        if dst.name in names:
            raise CiphertextFileError(f"{dst}: {EXISTS}")


Output = tuple[Path, Path, Any, Ciphertext]  # source, destination, what to write, its ciphertext
Written = list[tuple[Path, Ciphertext, NoiseveilError | None]]


def _written(outputs: Iterable[Output], write: Callable[[Path, Any], object]) -> Written:
    """Each output written: (source, ciphertext, the error that refused it or None)."""
    outcomes: Written = []
    for src, dst, value, ct in outputs:
        try:
            write(dst, value)
        except NoiseveilError as err:
            outcomes.append((src, ct, err))
            continue
        outcomes.append((src, ct, None))
    return outcomes


def _count_written(report: Report, outcomes: Written) -> None:
    for src, ct, err in outcomes:
        if err is not None:
            report.fail(src, err)
        else:
            report.done += 1
            report.note_recovery(src, ct)


# Images of at least this many samples are encoded and written on the writer thread: a photo's
# PNG is deflated on every core by code that releases the GIL (noiseveil.io.png_encoder), so
# its writing overlaps the next photo's decryption. A small image is encoded and written on the
# caller's thread: there the writer thread cost more than it hid. Its Python (a few calls per
# file) waits for the GIL the caller holds, and the caller waits in turn; measured on 2,000
# 32x32 decryptions (ad hoc, alternating runs, medians): 1,171 images/s written behind against
# 1,693 inline into a RAM folder, where creating a file costs about 0.06 ms, and 840 against
# 771 on this machine's disk, where it cost 0.1-0.9 ms.
WRITE_BEHIND_SAMPLES = 1 << 20
_writer_thread = SharedPool("write", workers=1)


class _WriteBehind:
    """Each batch of photos is written on a thread while the caller reads and processes the
    next; at most one batch is in writing, and its outcomes reach the report on the caller's
    thread, when the next batch is handed over or the block ends. A batch of small images is
    written at once, on the caller's thread (see :data:`WRITE_BEHIND_SAMPLES`)."""

    def __init__(self, report: Report, encode: Callable[[Any], bytes] | None) -> None:
        self.report, self.encode, self.pending = report, encode, None

    def __enter__(self) -> _WriteBehind:
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait()  # also when failing: no write outlives the run that made it

    def submit(self, outputs: list[Output]) -> None:
        self.wait()
        if not outputs:
            return
        if min(ct.pixels.size for _, _, _, ct in outputs) >= WRITE_BEHIND_SAMPLES:
            self.pending = _writer_thread().submit(_written, outputs, self._encode_and_write)
        else:
            _count_written(self.report, _written(outputs, self._encode_and_write))

    def _encode_and_write(self, path: Path, value: Any) -> None:
        write_new_file(path, self.encode(value))

    def wait(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            _count_written(self.report, pending.result())


Step = Callable[[Sequence, Report, _WriteBehind], None]


def _run(
    action: str,
    pairs: Sequence,
    batch_size: int,
    step: Step,
    progress: bool,
    encode: Callable[[Any], bytes] | None = None,
) -> Report:
    """``step`` over ``pairs`` in batches, its outputs written behind it (``encode`` makes the
    bytes of one output's file; None for a step that writes nothing); the report counts an
    output once its file is written."""
    report = Report(action)
    start = time.perf_counter()
    with (
        progress_bar(total=len(pairs), desc=action, unit="img", disable=not progress) as bar,
        _WriteBehind(report, encode) as writer,
    ):
        for chunk in chunks(pairs, batch_size):
            step(chunk, report, writer)
            bar.update(len(chunk))
    report.seconds = time.perf_counter() - start
    return report


# Samples held decoded at once: a batch is cut when it reaches this, so a folder of
# 12-megapixel photos (36 M samples each) is processed one photo at a time whatever
# --batch-size says, and small images still go in full batches.
SAMPLE_BUDGET = 1 << 24


def _bounded(items: Iterable[Any], samples: Callable[[Any], int]) -> Iterator[list[Any]]:
    """``items`` in lists that hold at most :data:`SAMPLE_BUDGET` samples (or one item)."""
    batch, held = [], 0
    for item in items:
        if batch and held + samples(item) > SAMPLE_BUDGET:
            yield batch
            batch, held = [], 0
        batch.append(item)
        held += samples(item)
    if batch:
        yield batch


def _by_shape(items: Sequence[Any], shape: Callable[[Any], tuple[int, ...]]) -> Iterator[list[Any]]:
    """``items`` grouped by image shape, in order of first appearance (a tensor needs one size)."""
    for group in same_shape_groups([shape(item) for item in items]):
        yield [items[i] for i in group]


def encrypt_files(
    scheme: Scheme,
    key: SecretKey,
    pairs: Sequence[tuple[Path, Path]],
    batch_size: int = 64,
    progress: bool = True,
) -> Report:
    """Encrypt image files into ciphertext PNGs (refused up front if the cloud model cannot use the key)."""
    scheme.check_key(key)
    claim = _Claims()

    def readable(
        chunk: Sequence[tuple[Path, Path]], report: Report
    ) -> Iterator[tuple[Path, Path, np.ndarray]]:
        for src, dst in chunk:
            try:
                claim(dst)
                image = read_image(src, channels=None)
                scheme.check_shape(image.shape, f"{src}:")
            except NoiseveilError as err:
                report.fail(src, err)
                continue
            yield src, dst, image

    def step(chunk: Sequence[tuple[Path, Path]], report: Report, writer: _WriteBehind) -> None:
        for held in _bounded(readable(chunk, report), lambda item: item[2].size):
            for group in _by_shape(held, lambda item: item[2].shape):
                images = to_tensor(np.stack([image for _, _, image in group]))
                written = []
                for (src, dst, _), result in zip(group, scheme.encrypt_each(images, key), strict=True):
                    if isinstance(result, EncryptionError):
                        report.fail(src, f"{src}: not encrypted: {result}")
                        continue
                    written.append((src, dst, result, result))
                del images
                writer.submit(written)

    # the self-check serialised each ciphertext already: its bytes are what is written
    return _run("encrypt", pairs, batch_size, step, progress, ciphertext_to_bytes)


def decrypt_files(
    scheme_for: Callable[[str], Scheme],
    key: SecretKey,
    pairs: Sequence[tuple[Path, Path]],
    batch_size: int = 64,
    progress: bool = True,
) -> Report:
    """Decrypt ciphertext PNGs; ``scheme_for(model_id)`` supplies each file's scheme."""
    claim = _Claims()

    def readable(
        chunk: Sequence[tuple[Path, Path]], report: Report
    ) -> Iterator[tuple[Path, Path, Ciphertext]]:
        for src, dst in chunk:
            try:
                claim(dst)
                ct = read_ciphertext(src)
                scheme_for(ct.decrypt_model)  # a model this zoo lacks: this file fails, not the batch
            except NoiseveilError as err:
                report.fail(src, err)
                continue
            yield src, dst, ct

    def step(chunk: Sequence[tuple[Path, Path]], report: Report, writer: _WriteBehind) -> None:
        for held in _bounded(readable(chunk, report), lambda item: item[2].pixels.size):
            groups: dict[str, list[tuple[Path, Path, Ciphertext]]] = {}
            for item in held:
                groups.setdefault(item[2].decrypt_model, []).append(item)
            for model_id, items in groups.items():
                writer.submit(_decrypted(scheme_for(model_id), key, items, report))

    return _run("decrypt", pairs, batch_size, step, progress, image_to_bytes)


def _decrypted(
    scheme: Scheme, key: SecretKey, items: list[tuple[Path, Path, Ciphertext]], report: Report
) -> list[tuple[Path, Path, np.ndarray, Ciphertext]]:
    """Verify and decrypt one model's ciphertexts into outputs to write (a wrong key or
    tampering fails that file: nothing of it is written)."""
    outputs = []
    for (src, dst, ct), image in zip(
        items, scheme.decrypt_each([ct for _, _, ct in items], key), strict=True
    ):
        if isinstance(image, NoiseveilError):
            report.fail(src, image)
        else:
            outputs.append((src, dst, image, ct))
    return outputs


@torch.no_grad()
def classify_files(
    classifier: nn.Module,
    image_shape: tuple[int, int, int] | None,
    files: Iterable[Path],
    batch_size: int = 256,
    progress: bool = True,
    any_size: bool = False,
) -> Report:
    """Classify image files (plaintexts or ciphertexts alike: the cloud sees only pixels).

    ``image_shape`` (H, W, C) is what the classifier takes; ``any_size`` says it takes images of
    every size (a classifier card's pipeline resizes them); otherwise ``None`` (a model that does
    not say, such as a TorchScript file) lets the first readable image set it.
    """
    classifier.eval()
    expected = image_shape

    def readable(chunk: Sequence[Path], report: Report) -> Iterator[tuple[Path, np.ndarray]]:
        nonlocal expected
        for src in chunk:
            try:
                image = read_image(src, channels=None)
                if not any_size:
                    expected = expected or image.shape
                    if image.shape != tuple(expected):
                        got, want = ("x".join(map(str, s)) for s in (image.shape, expected))
                        raise SchemeError(f"{src}: image is {got}, the classifier takes {want} (HxWxC)")
            except NoiseveilError as err:
                report.fail(src, err)
                continue
            yield src, image

    def step(chunk: Sequence[Path], report: Report, _writer: _WriteBehind) -> None:  # writes nothing
        for held in _bounded(readable(chunk, report), lambda item: item[1].size):
            labels: dict[Path, int] = {}
            for group in _by_shape(held, lambda item: item[1].shape):
                scores = classifier(to_tensor(np.stack([image for _, image in group])))
                labels.update(zip([src for src, _ in group], scores.argmax(1).tolist(), strict=True))
            report.results += [(src, labels[src]) for src, _ in held]  # in input order
            report.done += len(held)

    return _run("classify", list(files), batch_size, step, progress)

"""Provenance ids for source files and the on-disk cache of decoded datasets."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .dataset import Arrays

# Bump whenever a reader's output changes, so caches written by older code are not reused.
CACHE_VERSION = 1


def cache_dir() -> Path:
    """NOISEVEIL_CACHE if set, else ~/.cache/noiseveil."""
    env = os.environ.get("NOISEVEIL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "noiseveil"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, remembered per (path, size, mtime) so repeated loads hash once."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def source_id(files: Sequence[Path], label: str | None = None) -> str:
    """Provenance id "<label>:sha256:<first 16 hex>" for results files.

    For one file the digest is the file's own SHA-256 (as listed in the data README) and the
    label defaults to its name; several files are hashed as a list of (name, sha256) lines.
    """
    if len(files) == 1:
        digest = file_sha256(files[0])
        label = label or files[0].name
    else:
        lines = "".join(f"{f.name} {file_sha256(f)}\n" for f in files)
        digest = hashlib.sha256(lines.encode()).hexdigest()
        label = label or "+".join(f.name for f in files)
    return f"{label}:sha256:{digest[:16]}"


def cached_arrays(name: str, key: str, build: Callable[[], Arrays]) -> Arrays:
    """Return `build()`, memoised in cache_dir() as an .npz named after `name` and `key`.

    `key` must change whenever the sources do (use `source_id`). The .npz is uncompressed: it is
    larger, but loads in well under a second, which is the point of the cache. A cache that cannot
    be read or written only costs time, so those failures are warnings.
    """
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{name}|{key}".encode()).hexdigest()[:16]
    path = cache_dir() / f"{name}-{digest}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(f"{path}: unreadable cache, rebuilding ({exc})", stacklevel=2)
    # Decoding a dataset takes tens of seconds (CIFAR-10's pickles): said, not silent.
    print(f"{name}: decoding the dataset into the cache {path} (once) ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    arrays = build()
    print(f"{name}: decoded in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    try:
        save_arrays_atomic(path, arrays)
    except OSError as exc:
        warnings.warn(f"{path}: could not write cache ({exc})", stacklevel=2)
    return arrays


def save_arrays_atomic(path: Path, arrays: Arrays) -> None:
    """Write to a temporary file and rename, so that readers never see a partial cache file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a shared cache folder should stay readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

"""Ciphertext files addressed by content hash, written so that a crash leaves no torn file.

A file is written to a temporary name in the same directory, flushed and fsynced, then renamed
onto its final name (atomic on POSIX) and the directory fsynced. The server writes the file
*before* it commits the database row: a crash between the two leaves an unreferenced file
(removed by :meth:`BlobStore.collect_orphans` at start-up), never a row without its file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

MAX_NAME_CHARACTERS = 1024


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a stored ciphertext's file name, or None if it can: a relative
    path ('/'-separated) to a .png that stays inside whatever folder it is fetched into, with
    no hidden part (a folder listing skips those) and no control character."""
    parts = name.split("/")
    if not name or len(name) > MAX_NAME_CHARACTERS:
        return f"a file name has 1 to {MAX_NAME_CHARACTERS} characters"
    if any(ord(c) < 32 or c in "\\\x7f" for c in name):
        return "a file name has no control character or backslash"
    if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        return "a file name is a relative path inside its folder (no '..', no leading '/', no hidden part)"
    if not name.lower().endswith(".png"):
        return "a ciphertext's file name ends in .png"
    return None


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """``root/ab/cdef….png``: the SHA-256 of the bytes names the file."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a SHA-256 hex digest: {digest!r}")
        return self.root / digest[:2] / f"{digest[2:]}.png"

    def put(self, data: bytes) -> str:
        """Store ``data`` durably; returns its digest. Storing the same bytes twice is a no-op."""
        digest = content_hash(data)
        final = self.path(digest)
        if final.exists():
            return digest
        final.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".upload-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(final.parent)
        return digest

    def get(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)
        _fsync_dir(self.path(digest).parent)

    def digests(self) -> Iterable[str]:
        for f in self.root.glob("??/*.png"):
            yield f.parent.name + f.stem

    def collect_orphans(self, referenced: set[str]) -> int:
        """Remove files no row references and temporary files a crash left; returns how many."""
        removed = 0
        for tmp in self.root.glob("??/.upload-*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
        for digest in list(self.digests()):
            if digest not in referenced:
                self.path(digest).unlink(missing_ok=True)
                removed += 1
        return removed


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

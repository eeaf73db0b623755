"""Thread pools shared by a module, for work whose C code releases the GIL (deflate, hashing,
numpy): made on first use, sized to the cores this process may run on, and forgotten in a
forked child, which has none of its parent's threads."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor


def cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class SharedPool:
    """``pool()`` is one ThreadPoolExecutor of ``workers`` threads (default: :func:`cores`)."""

    def __init__(self, name: str, workers: int | None = None) -> None:
        self.name, self.workers, self._pool = name, workers, None
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def __call__(self) -> ThreadPoolExecutor:
        if self._pool is None:
            workers = self.workers or cores()
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"noiseveil-{self.name}")
        return self._pool

    def _forget(self) -> None:
        self._pool = None

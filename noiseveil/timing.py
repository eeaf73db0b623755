"""Wall-clock timing shared by the benchmark scripts, so that every figure is taken the same way."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``fn(*args)`` and the seconds it took."""
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median of ``repeats`` timed calls after one untimed warm-up call (first calls pay
    one-off allocation and kernel-selection costs)."""
    fn()
    return statistics.median(timed(fn)[1] for _ in range(repeats))

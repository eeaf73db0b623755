"""Wall-clock timing: one home for how every figure and report stage is timed."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
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


class Stages:
    """Runs the named stages of a long job (a report): says each stage's name as it starts, so
    progress shows from the first second, then how long it took; keeps every stage's seconds.

    With ``cache`` (a JSON file) and ``identity`` (what the results depend on), a stage already
    done for the same identity is reused instead of re-run: an interrupted report resumes.
    """

    def __init__(self, prefix: str = "", cache: Path | None = None, identity: Any = None) -> None:
        self.prefix, self.cache, self.seconds = prefix, cache, {}
        self.identity = json.loads(json.dumps(identity))  # as read back: tuples become lists
        saved = json.loads(cache.read_text()) if cache is not None and cache.exists() else {}
        self.done = saved.get("done", {}) if saved.get("identity") == self.identity else {}

    def run(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        label = f"{self.prefix}{name}"
        if self.cache is not None and name in self.done:
            print(f"{label}: reused from {self.cache}", flush=True)
            self.seconds[name] = self.done[name]["seconds"]
            return self.done[name]["value"]
        print(f"{label} ...", flush=True)
        value, self.seconds[name] = timed(fn, *args)
        print(f"{label}: {self.seconds[name]:.0f}s", flush=True)
        if self.cache is not None:
            self.done[name] = {"seconds": self.seconds[name], "value": value}
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            self.cache.write_text(json.dumps({"identity": self.identity, "done": self.done}))
        return value

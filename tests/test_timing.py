"""The benchmark scripts' timing helpers."""

from __future__ import annotations

import time

from noiseveil.timing import median_seconds, timed


def test_timed_returns_the_value_and_the_elapsed_time() -> None:
    value, seconds = timed(lambda s: (time.sleep(s), "done")[1], 0.02)
    assert value == "done" and 0.015 < seconds < 1.0


def test_median_seconds_warms_up_once_and_ignores_the_warm_up() -> None:
    calls = []

    def slow_first() -> None:
        time.sleep(0.2 if not calls else 0.01)
        calls.append(1)

    assert median_seconds(slow_first, repeats=3) < 0.1
    assert len(calls) == 4

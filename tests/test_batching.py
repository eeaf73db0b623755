"""RequestBatcher: concurrent callers' items processed together, each caller its own outcome."""

from __future__ import annotations

import threading
import time

import pytest

from noiseveil.app.service.batching import RequestBatcher


def submit_from_threads(batcher: RequestBatcher, items: list) -> dict:
    """Every item submitted from its own thread, all at once; item -> result or exception."""
    outcomes: dict = {}
    start = threading.Barrier(len(items))

    def call(item) -> None:
        start.wait()
        try:
            outcomes[item] = batcher.submit(item)
        except Exception as err:  # noqa: BLE001 - the test looks at which caller got which
            outcomes[item] = err

    threads = [threading.Thread(target=call, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_concurrent_items_share_batches_and_each_caller_gets_its_own_result() -> None:
    sizes: list[int] = []

    def square(items: list[int]) -> list[int]:
        sizes.append(len(items))
        time.sleep(0.01)  # as a forward pass takes time, during which others queue
        return [i * i for i in items]

    batcher = RequestBatcher(square, "test", max_batch=8, max_wait=0.05)
    outcomes = submit_from_threads(batcher, list(range(20)))
    assert outcomes == {i: i * i for i in range(20)}
    assert sum(sizes) == 20 and max(sizes) <= 8 and len(sizes) < 20  # batched, never over the cap
    assert (batcher.batches, batcher.items) == (len(sizes), 20)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(1)


def test_an_items_exception_goes_to_its_caller_and_a_batchs_to_every_caller() -> None:
    def odd_refused(items: list[int]) -> list:
        if 13 in items:
            raise OSError("disk full")
        return [ValueError(f"{i} is odd") if i % 2 else i for i in items]

    batcher = RequestBatcher(odd_refused, "test", max_batch=64, max_wait=0.05)
    outcomes = submit_from_threads(batcher, [0, 1, 2, 3])
    assert outcomes[0] == 0 and outcomes[2] == 2
    assert isinstance(outcomes[1], ValueError) and str(outcomes[3]) == "3 is odd"
    outcomes = submit_from_threads(batcher, [12, 13, 14])
    assert all(isinstance(v, OSError) for v in outcomes.values())
    assert batcher.submit(4) == 4  # the worker lives on after a failed batch


def test_a_lone_item_waits_at_most_max_wait() -> None:
    batcher = RequestBatcher(lambda items: items, "test", max_wait=0.2)
    start = time.perf_counter()
    assert batcher.submit("alone") == "alone"
    assert 0.15 < time.perf_counter() - start < 2.0
    quick = RequestBatcher(lambda items: items, "test", max_wait=0.0)
    start = time.perf_counter()
    quick.submit("alone")
    assert time.perf_counter() - start < 0.1

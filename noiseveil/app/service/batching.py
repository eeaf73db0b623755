"""Work of concurrent requests done together: one forward pass, one database commit.

Each upload runs on its own thread of the server's pool. Done one at a time, every upload pays
a whole forward pass of the cloud model and a whole transaction (an fsync of the database's
log). A :class:`RequestBatcher` takes items from many threads, hands them to one worker thread
that processes everything queued (waiting at most ``max_wait`` after the first item for others,
up to ``max_batch``), and gives each caller its own result or its own exception::

    thread 1 ─ submit(a) ─┐                                  ┌─> result(a)
    thread 2 ─ submit(b) ─┼─> queue ─> worker: process([a, b, c]) ─┼─> result(b)
    thread 3 ─ submit(c) ─┘      (≤ max_wait after a, ≤ max_batch)  └─> error(c)

A caller returns only when its own item is done, so nothing is acknowledged before it is
committed: group commit keeps the service's exactly-once guarantee (a crash loses a group
that no client was told was stored).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# A batch's outcome, item by item: a result or the exception that item's caller gets.
Outcomes = Sequence["Result | BaseException"]


class RequestBatcher(Generic[Item, Result]):
    """Runs ``process`` on batches of the items that threads :meth:`submit` concurrently.

    ``process(items)`` returns one outcome per item, in order: a result, or an exception for
    that item's caller alone; an exception it raises goes to every caller of the batch.
    """

    def __init__(
        self,
        process: Callable[[list[Item]], Sequence[Result | BaseException]],
        name: str,
        max_batch: int = 64,
        max_wait: float = 0.002,
    ) -> None:
        if max_batch < 1 or max_wait < 0:
            raise ValueError("a batch holds at least one item and waits a time >= 0")
        self.process, self.max_batch, self.max_wait = process, max_batch, max_wait
        self.batches = 0  # how many batches ran, and how many items they held (for the benchmarks)
        self.items = 0
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]] | None] = queue.SimpleQueue()
        self._worker = threading.Thread(target=self._run, name=f"batcher {name}", daemon=True)
        self._worker.start()

    def submit(self, item: Item) -> Result:
        """``item``'s result, once its batch is done (its exception, raised here, if it failed)."""
        if not self._worker.is_alive():
            raise RuntimeError("the batcher is closed")
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future.result()

    def close(self) -> None:
        """Finish what is queued, then stop the worker."""
        self._queue.put(None)
        self._worker.join()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._finish(batch)

    def _next_batch(self) -> list[tuple[Item, Future[Result]]] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch, deadline = [first], time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            try:  # what is queued already, then what arrives before the deadline
                entry = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if entry is None:
                self._queue.put(None)  # close after this batch
                break
            batch.append(entry)
        return batch

    def _finish(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            outcomes = self.process([item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} gave {len(outcomes)} outcomes")
        except BaseException as err:  # noqa: BLE001 - every caller of the batch gets it
            outcomes = [err] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

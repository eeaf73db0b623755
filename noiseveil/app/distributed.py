"""The file pipeline elsewhere: the same per-batch work as one process, one task per batch,
on Ray (``--ray``: a cluster) or on worker processes of this machine (``--processes``: its
cores, without Ray; a worker is started by spawning a fresh interpreter, so its start-up is
paid once per run).

::

    driver (the data provider's machine)            Ray workers (the provider's own cluster)
    plan(input, output) -> (input, output) pairs
    cut into batches of --batch-size, as one process does
    the key ──ray.put, once──▶ object store ────▶  task(batch of paths, model id, key ref):
                                                     the scheme loaded by model id, once per
                                                     worker process; encrypt_files / decrypt_files
                                                     / classify_files on its batch, exactly as one
                                                     process runs it; outputs written atomically
    report per batch ◀───────────────────────────  (done, FAILED lines, labels)
    merged in input order: the same FAILED lines, labels and summary as one process

What a task carries: file paths (the images stay on storage the workers share), a model id
and, once per run, the key. The key goes only to the workers of the Ray instance given
(``--ray ADDRESS``: the provider's machines; none: a Ray instance on this machine): a cloud
never runs these tasks. Outputs are written under a temporary name and linked into place, so
a worker killed mid-run leaves finished files only; tasks are not retried (a retry would find
its own outputs and refuse to overwrite them). Of a lost batch, the outputs it linked into
place before it died count as done (each was verified before it was linked, and none was
there when the run began); the rest are reported as FAILED, and ``--skip-existing`` on a rerun
completes only what is missing.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noiseveil.crypto.keys import Key
from noiseveil.exceptions import NoiseveilError
from noiseveil.io.png import read_ciphertext
from noiseveil.pipeline import Report, chunks
from noiseveil.progress import progress_bar
from noiseveil.zoo import user_zoo_dir


class RayError(NoiseveilError):
    """Ray is not installed, or the Ray instance cannot be reached (one line)."""


@dataclass(frozen=True)
class Job:
    """What every worker needs to redo one batch of the work: small, and the same for all."""

    action: str  # "encrypt", "decrypt" or "classify"
    model_id: str | None = None  # encrypt, classify: the model (decrypt: each file names its own)
    classifier_file: Path | None = None  # a TorchScript classifier the workers can read
    nae: tuple[tuple[str, object], ...] = ()  # NAE settings changed from the model's, (name, value)
    publish_key_id: bool = True
    image_shape: tuple[int, int, int] | None = None  # classify: the shape every batch checks
    # The driver's user zoo (noiseveil model add), on storage the workers share as they share the
    # images: a worker started by `ray start` does not inherit the driver's environment.
    user_zoo: str = field(default_factory=lambda: str(user_zoo_dir()))


@functools.cache
def _scheme(
    model_id: str, classifier_file: Path | None, nae: tuple[tuple[str, object], ...], publish_key_id: bool
):
    """The encrypting scheme model, loaded once per worker process."""
    from noiseveil.app.services import open_scheme

    scheme = open_scheme(model_id, classifier_file)
    if nae:
        scheme = scheme.with_nae(**dict(nae))
    scheme.publish_key_id = publish_key_id
    return scheme


@functools.cache
def _decrypting_schemes(classifier_file: Path | None):
    """This worker's schemes by model id, for decryption (loaded once each)."""
    from noiseveil.app.services import schemes_by_id

    return schemes_by_id(classifier_file)


@functools.cache
def _cloud(model_id: str | None, classifier_file: Path | None):
    from noiseveil.app.services import cloud_model, torchscript_cloud

    return torchscript_cloud(classifier_file) if classifier_file is not None else cloud_model(model_id)


def run_batch(job: Job, key: Key | None, batch: Sequence[Any]) -> Report:
    """One batch, exactly as the single-process pipeline runs it (this is the Ray task's body)."""
    from noiseveil.pipeline import classify_files, decrypt_files, encrypt_files

    os.environ["NOISEVEIL_WEIGHTS"] = job.user_zoo  # before any model is looked up
    if job.action == "encrypt":
        scheme = _scheme(job.model_id, job.classifier_file, job.nae, job.publish_key_id)
        return encrypt_files(scheme, key, batch, batch_size=len(batch), progress=False)
    if job.action == "decrypt":
        return decrypt_files(_decrypting_schemes(job.classifier_file), key, batch, len(batch), progress=False)
    cloud = _cloud(job.model_id, job.classifier_file)
    shape = cloud.image_shape or job.image_shape
    return classify_files(cloud.classifier, shape, batch, len(batch), progress=False, any_size=cloud.any_size)


def connect(address: str | None, action: str = "ray") -> None:
    """Join the Ray instance at ``address``, or start one on this machine (None); nothing if
    this process is already connected."""
    try:
        import ray
    except ImportError:
        raise RayError("--ray needs Ray: pip install 'noiseveil[ray]'") from None
    if ray.is_initialized():
        return
    where = f"joining Ray at {address}" if address else "starting Ray on this machine"
    print(f"{action}: {where} ...", file=sys.stderr, flush=True)
    options: dict[str, Any] = {}
    if address and address.split(":")[0] in ("127.0.0.1", "localhost"):
        options["_node_ip_address"] = "127.0.0.1"  # a head on loopback: this machine, by that address
    try:
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR", **options
        )
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.AuthenticationError) as err:
        hint = ""
        if address not in (None, "auto") and os.environ.get("RAY_AUTH_MODE") != "token":
            # Ray >= 2.59 starts local clusters with token authentication; only "auto" finds out
            hint = (
                " (a cluster with token authentication, as Ray starts them, needs RAY_AUTH_MODE=token "
                "here, and its token: `ray get-auth-token` on the head, or RAY_AUTH_TOKEN)"
            )
        raise RayError(f"cannot reach Ray at {address}: {str(err).splitlines()[0]}{hint}") from None


def run_on_ray(
    job: Job,
    key: Key | None,
    items: Sequence[Any],
    batch_size: int,
    address: str | None = None,
    progress: bool = True,
) -> Report:
    """``items`` (pairs, or files to classify) in batches as Ray tasks; one merged Report whose
    failures and labels are in input order, as one process gives them."""
    connect(address, job.action)
    import ray

    task = ray.remote(max_retries=0)(run_batch)  # see the module docstring: no silent retries
    key_ref = ray.put(key)
    existed = _existing_outputs(items)
    pending = {task.remote(job, key_ref, batch): batch for batch in chunks(items, batch_size)}

    def finished() -> Iterator[tuple[Sequence[Any], Report | str]]:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            batch = pending.pop(ready[0])
            try:
                yield batch, ray.get(ready[0])
            except ray.exceptions.RayError as err:  # the worker died: the batch is lost, not retried
                yield batch, type(err).__name__

    return _gathered(job, items, existed, finished(), f"{job.action} (ray)", progress)


def run_in_processes(
    job: Job,
    key: Key | None,
    items: Sequence[Any],
    batch_size: int,
    processes: int,
    progress: bool = True,
) -> Report:
    """``items`` in batches on ``processes`` worker processes of this machine: the tasks Ray
    runs (:func:`run_batch`), without Ray, for one machine's cores. Each worker takes an equal
    share of this process's compute threads; the report is merged as :func:`run_on_ray`'s."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    import torch

    threads = max(1, torch.get_num_threads() // processes)
    print(f"{job.action}: starting {processes} worker processes ...", file=sys.stderr, flush=True)
    existed = _existing_outputs(items)
    # spawn, not fork: a forked child would inherit this process's threads (the progress bar's,
    # the writer's, torch's pool) in whatever state they were
    pool = ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(threads,),
    )
    try:
        pending = {pool.submit(run_batch, job, key, batch): batch for batch in chunks(items, batch_size)}

        def finished() -> Iterator[tuple[Sequence[Any], Report | str]]:
            for future in as_completed(pending):
                try:
                    yield pending[future], future.result()
                except BrokenProcessPool:  # a worker died: its batches and the queued ones are lost
                    yield pending[future], "a worker process died"

        return _gathered(job, items, existed, finished(), f"{job.action} ({processes} processes)", progress)
    finally:  # on Ctrl-C too: queued batches are dropped, running ones finish (outputs are atomic)
        pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(threads: int) -> None:
    """A worker process's set-up: its share of the threads, and Ctrl-C left to the driver
    (which stops the pool; a worker would otherwise print a traceback for the same key press)."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _existing_outputs(items: Sequence[Any]) -> set[Path]:
    """Outputs there before the run: a lost batch's outputs are judged by them (a worker refuses
    an existing output, so only one linked during this run is this run's finished work)."""
    return {out for out in map(_output, items) if out is not None and out.exists()}


def _gathered(
    job: Job,
    items: Sequence[Any],
    existed: set[Path],
    finished: Iterator[tuple[Sequence[Any], Report | str]],
    desc: str,
    progress: bool,
) -> Report:
    """One report of the batches as they finish (each a Report, or why it was lost), in input order."""
    merged = Report(job.action)
    start = time.perf_counter()
    with progress_bar(total=len(items), desc=desc, unit="img", disable=not progress) as bar:
        for batch, outcome in finished:
            lost = isinstance(outcome, str)
            merged.absorb(_lost_batch(job, batch, existed, outcome) if lost else outcome)
            bar.update(len(batch))
    merged.seconds = time.perf_counter() - start
    return _in_input_order(merged, items)


def _lost_batch(job: Job, batch: Sequence[Any], existed: set[Path], error: str) -> Report:
    """What a batch whose worker died leaves: outputs it linked into place are done (a worker
    verifies each before linking it); every other file failed. Classification writes no
    output, so its lost labels all fail."""
    report = Report(job.action)
    reason = f"worker lost ({error}); rerun with --skip-existing to finish"
    for item in batch:
        output = _output(item)
        if output is None or output in existed or not output.exists():
            report.fail(_source(item), reason)
            continue
        if job.action == "decrypt":  # its header says whether the recovery was lossy
            try:
                report.note_recovery(item[0], read_ciphertext(item[0]))
            except NoiseveilError as err:
                report.fail(item[0], err)
                continue
        report.done += 1
    return report


def _source(item: tuple[Path, Path] | Path) -> Path:
    """The input file of an item: a pair's first path (encrypt, decrypt) or the file (classify)."""
    return item[0] if isinstance(item, tuple) else item


def _output(item: tuple[Path, Path] | Path) -> Path | None:
    """The output file of an item: a pair's second path (encrypt, decrypt); classify has none."""
    return item[1] if isinstance(item, tuple) else None


def _in_input_order(report: Report, items: Sequence[Any]) -> Report:
    position = {_source(it): i for i, it in enumerate(items)}
    report.failures.sort(key=lambda f: position.get(f[0], len(position)))
    report.results.sort(key=lambda r: position.get(r[0], len(position)))
    report.lossy.sort(key=lambda r: position.get(r[0], len(position)))
    return report

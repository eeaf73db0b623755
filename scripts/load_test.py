"""Load and fault test of the cloud service on loopback, for SQLite and PostgreSQL.

    python scripts/load_test.py                     # SQLite; PostgreSQL too if $NOISEVEIL_TEST_DATABASE_URL
    python scripts/load_test.py --uploads 2000 --clients 8 --workers 1 2 --batch-waits 0 2 5

For each database: ``noiseveil serve`` in its own process; ``--clients`` threads (each with
its own HTTP connection) upload ``--uploads`` distinct EtC ciphertexts of CIFAR-10 test images;
then every image must be stored exactly once with the label the cloud model gives it. Then the
fault run: the same uploads into a fresh server, SIGKILLed when half are acknowledged and
restarted; every acknowledged image must be there with its bytes, and the clients' rerun must
store each remaining image exactly once. Beside them, the floor: the cloud model's forward pass
alone, one image at a time on one thread (what an upload cost before the server batched them),
and in batches of ``--clients`` images, as concurrent uploads now share one. The throughput run
is repeated for each ``--workers`` (server processes) and ``--batch-waits`` (how long the first
of concurrent uploads waits for others: ``serve --batch-wait-ms``); the fault run for each
``--workers`` at serve's default wait. The clients run on the
same two cores as the server: what they spend is not the server's.

Writes results/service/load-test.json (uploads/s, p50/p95/p99 latency, fault results).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.app.service.client import CloudClient, CloudError
from noiseveil.app.service.launcher import ServerProcess
from noiseveil.app.service.settings import ServiceSettings
from noiseveil.data import fixed_subset, load_dataset, to_tensor
from noiseveil.io.png import ciphertext_to_bytes
from noiseveil.zoo import load_scheme

MODEL = "etc-cifar10-convmixer"


def corpus(n: int, clients: int) -> tuple[list[bytes], list[int], dict[str, Any]]:
    """``n`` distinct ciphertexts, the label the cloud model gives each alone, and the floor:
    the model's forward pass on one thread, one image at a time and ``clients`` at a time."""
    data = load_dataset("cifar10")
    scheme = load_scheme(MODEL)
    images = data.x_test[fixed_subset(len(data.x_test), n, seed=2026)]
    cts = scheme.encrypt(to_tensor(images), scheme.demo_key())
    classifier = scheme.cloud_classifier()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as the server: one thread for the model
    pixels = to_tensor(np.stack([c.pixels for c in cts]))
    with torch.no_grad():
        start = time.perf_counter()
        labels = [int(classifier(pixels[i : i + 1]).argmax(1).item()) for i in range(n)]
        alone = (time.perf_counter() - start) / n
        start = time.perf_counter()
        for i in range(0, n, clients):
            classifier(pixels[i : i + clients])
        batched = (time.perf_counter() - start) / n
    torch.set_num_threads(previous)
    floor = {
        "one_at_a_time": {"seconds_per_image": alone, "images_per_second": 1 / alone},
        f"batches_of_{clients}": {"seconds_per_image": batched, "images_per_second": 1 / batched},
        "note": "the cloud model's forward pass alone, on one thread",
    }
    return [ciphertext_to_bytes(c) for c in cts], labels, floor


def upload_all(
    base: str,
    token: str,
    bodies: list[bytes],
    clients: int,
    on_ack: Callable[[int], None] | None = None,
    server_may_die: bool = False,
) -> tuple[dict[str, int], list[float], float]:
    """Upload from ``clients`` threads (each its own connection); returns acknowledged digests
    -> id, latencies and wall time. ``on_ack(count)`` is told of each acknowledgement; with
    ``server_may_die``, a client stops quietly when the server is gone (the fault run)."""
    acknowledged: dict[str, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def client(c: CloudClient, part: list[bytes]) -> None:
        with c:
            for body in part:
                start = time.perf_counter()
                try:
                    row = c.upload(body)
                except CloudError:
                    if server_may_die:
                        return
                    raise
                elapsed = time.perf_counter() - start
                with lock:
                    if row["duplicate"]:
                        raise AssertionError("a distinct image was answered 'already stored'")
                    acknowledged[row["sha256"]] = row["id"]
                    latencies.append(elapsed)
                    if on_ack is not None:
                        on_ack(len(acknowledged))

    # the clients are made before the clock starts: their set-up is not the server's work
    made = [CloudClient(base, token, retries=0 if server_may_die else 4) for _ in range(clients)]
    threads = [threading.Thread(target=client, args=(made[i], bodies[i::clients])) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return acknowledged, latencies, time.perf_counter() - start


def stored_rows(base: str, admin: str) -> list[dict[str, Any]]:
    with CloudClient(base, admin) as c:
        return list(c.images())


def check_exactly_once(rows: list[dict[str, Any]], bodies: list[bytes], labels: list[int]) -> dict[str, Any]:
    expected = {hashlib.sha256(b).hexdigest(): label for b, label in zip(bodies, labels, strict=True)}
    digests = [r["sha256"] for r in rows]
    wrong = [r for r in rows if expected.get(r["sha256"]) != r["label"]]
    return {
        "stored": len(rows),
        "distinct": len(set(digests)),
        "missing": len(set(expected) - set(digests)),
        "unexpected": len(set(digests) - set(expected)),
        "wrong_label": len(wrong),
        "exactly_once_with_right_label": len(rows) == len(set(digests)) == len(expected) and not wrong,
    }


def throughput_run(
    workdir: Path, url: str | None, bodies, labels, clients: int, workers: int, batch_wait_ms: int
) -> dict[str, Any]:
    extra = _serve_args(workers, batch_wait_ms)
    server = ServerProcess(workdir / "cloud", url, models=(MODEL,), extra_args=extra)
    try:
        token = server.new_token("provider", "load test")
        print(f"  {len(bodies)} uploads from {clients} clients ...", flush=True)
        acknowledged, latencies, wall = upload_all(server.base, token, bodies, clients)
        check = check_exactly_once(stored_rows(server.base, server.admin_token), bodies, labels)
    finally:
        server.stop()
    ms = np.array(latencies) * 1000
    return {
        "uploads": len(bodies),
        "clients": clients,
        "workers": workers,
        "batch_wait_ms": batch_wait_ms,
        "acknowledged": len(acknowledged),
        "seconds": wall,
        "uploads_per_second": len(acknowledged) / wall,
        "latency_ms": {f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)} | {"max": float(ms.max())},
        **check,
    }


def fault_run(workdir: Path, url: str | None, bodies, labels, clients: int, workers: int) -> dict[str, Any]:
    """SIGKILL (the server and its workers) when half the uploads are acknowledged, restart,
    check, and let the providers upload everything again."""
    server = ServerProcess(workdir / "cloud", url, models=(MODEL,), extra_args=_serve_args(workers))
    admin = server.admin_token
    try:
        token = server.new_token("provider", "load test")
        half, killed = len(bodies) // 2, threading.Event()

        def kill_at_half(count: int) -> None:
            if count >= half and not killed.is_set():
                killed.set()
                server.kill()

        acknowledged, _, _ = upload_all(
            server.base, token, bodies, clients, kill_at_half, server_may_die=True
        )
        server.start()
        rows = {r["sha256"]: r for r in stored_rows(server.base, admin)}
        lost = [d for d, image_id in acknowledged.items() if rows.get(d, {}).get("id") != image_id]
        with CloudClient(server.base, admin) as c:
            corrupt = [d for d, i in acknowledged.items() if hashlib.sha256(c.download(i)).hexdigest() != d]
        with CloudClient(server.base, token) as c:  # the providers' rerun: every image again
            rerun = [c.upload(b) for b in bodies]
        check = check_exactly_once(stored_rows(server.base, admin), bodies, labels)
    finally:
        server.stop()
    return {
        "killed_after_acknowledged": len(acknowledged),
        "stored_after_restart": len(rows),
        "acknowledged_lost": len(lost),
        "acknowledged_corrupt": len(corrupt),
        "stored_unacknowledged": len(rows) - len(acknowledged),
        "rerun_new": sum(not r["duplicate"] for r in rerun),
        "rerun_already_stored": sum(r["duplicate"] for r in rerun),
        **check,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=2000, help="distinct images uploaded (default: 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default: 8)")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        metavar="N",
        help="serve --workers of each run (default: 1 2; the machine has two cores)",
    )
    parser.add_argument(
        "--batch-waits",
        type=int,
        nargs="+",
        default=[0, SERVE_DEFAULT_WAIT_MS, 5],
        metavar="MS",
        help=f"serve --batch-wait-ms of each throughput run (default: 0 {SERVE_DEFAULT_WAIT_MS} 5)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("NOISEVEIL_TEST_DATABASE_URL"),
        help="PostgreSQL URL of a role that may create databases (default: $NOISEVEIL_TEST_DATABASE_URL)",
    )
    args = parser.parse_args()
    print(f"encrypting {args.uploads} CIFAR-10 test images with {MODEL}'s demo key ...", flush=True)
    bodies, labels, floor = corpus(args.uploads, args.clients)
    databases: dict[str, Any] = {"sqlite": lambda: None}
    if args.postgres:
        databases["postgresql"] = lambda: fresh_postgres_database(args.postgres)
    result: dict[str, Any] = {
        **provenance([load_dataset("cifar10").source_id], [MODEL]),
        "model": MODEL,
        "classification_floor": floor,
        "serve_default_batch_wait_ms": SERVE_DEFAULT_WAIT_MS,
        "databases": {},
    }
    alone = floor["one_at_a_time"]["images_per_second"]
    for name, make_url in databases.items():
        print(f"{name}:", flush=True)
        runs, faults = [], {}
        with tempfile.TemporaryDirectory(prefix=f"noiseveil-load-{name}-") as tmp:
            for workers in args.workers:
                for wait in args.batch_waits:
                    where = Path(tmp) / f"load-{workers}-{wait}"
                    load = throughput_run(where, make_url(), bodies, labels, args.clients, workers, wait)
                    load["share_of_floor_one_at_a_time"] = load["uploads_per_second"] / alone
                    runs.append(load)
                    print(f"  {workers} worker(s), batch wait {wait} ms: {_said(load)}", flush=True)
                print(f"  {workers} worker(s): fault run, SIGKILL at half, restart ...", flush=True)
                where = Path(tmp) / f"fault-{workers}"
                faults[str(workers)] = fault_run(where, make_url(), bodies, labels, args.clients, workers)
                print(f"  {faults[str(workers)]}", flush=True)
        best = max(runs, key=lambda r: r["uploads_per_second"])
        result["databases"][name] = {"load": runs, "best": best, "fault_by_workers": faults}
    write_result(RESULTS_DIR / "service" / "load-test.json", result)
    print(f"wrote {RESULTS_DIR / 'service' / 'load-test.json'}")


SERVE_DEFAULT_WAIT_MS = round(ServiceSettings.batch_wait * 1000)  # noiseveil serve --batch-wait-ms's default


def _serve_args(workers: int, wait_ms: int | None = None) -> list[str]:
    wait = [] if wait_ms is None else ["--batch-wait-ms", str(wait_ms)]
    return ["--workers", str(workers), *wait]


def _said(load: dict[str, Any]) -> str:
    latency = "/".join(f"{load['latency_ms'][p]:.1f}" for p in ("p50", "p95", "p99"))
    share = 100 * load["share_of_floor_one_at_a_time"]
    return (
        f"{load['uploads_per_second']:.1f} uploads/s ({share:.0f} % of the floor), p50/p95/p99 {latency} ms"
    )


def fresh_postgres_database(url: str) -> str:
    """A new, empty database on the server of ``url`` (the role must be allowed to create one)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"nv_load_{uuid.uuid4().hex[:10]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


if __name__ == "__main__":
    main()

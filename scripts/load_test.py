"""Load and fault test of the cloud service on loopback, for SQLite and PostgreSQL.

    python scripts/load_test.py                     # SQLite; PostgreSQL too if $NOISEVEIL_TEST_DATABASE_URL
    python scripts/load_test.py --uploads 2000 --clients 8

For each database: ``noiseveil serve`` in its own process; ``--clients`` threads (each with
its own HTTP connection) upload ``--uploads`` distinct EtC ciphertexts of CIFAR-10 test images;
then every image must be stored exactly once with the label the cloud model gives it. Then the
fault run: the same uploads into a fresh server, SIGKILLed when half are acknowledged and
restarted; every acknowledged image must be there with its bytes, and the clients' rerun must
store each remaining image exactly once. Beside them, the physical floor: the cloud model's
forward pass alone, one image at a time as the server runs it.

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
from noiseveil.data import fixed_subset, load_dataset, to_tensor
from noiseveil.io.png import ciphertext_to_bytes
from noiseveil.zoo import load_scheme

MODEL = "etc-cifar10-convmixer"


def corpus(n: int) -> tuple[list[bytes], list[int], float]:
    """``n`` distinct ciphertexts, the label the cloud model gives each (one image at a time,
    as the server classifies), and the seconds per image that classification alone takes."""
    data = load_dataset("cifar10")
    scheme = load_scheme(MODEL)
    images = data.x_test[fixed_subset(len(data.x_test), n, seed=2026)]
    cts = scheme.encrypt(to_tensor(images), scheme.demo_key())
    classifier = scheme.cloud_classifier()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as the server: one thread per request
    labels, start = [], time.perf_counter()
    with torch.no_grad():
        for ct in cts:
            labels.append(int(classifier(to_tensor(ct.pixels[None])).argmax(1).item()))
    seconds = (time.perf_counter() - start) / n
    torch.set_num_threads(previous)
    return [ciphertext_to_bytes(c) for c in cts], labels, seconds


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

    def client(part: list[bytes]) -> None:
        with CloudClient(base, token, retries=0 if server_may_die else 4) as c:
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

    threads = [threading.Thread(target=client, args=(bodies[i::clients],)) for i in range(clients)]
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


def throughput_run(workdir: Path, url: str | None, bodies, labels, clients: int) -> dict[str, Any]:
    server = ServerProcess(workdir / "cloud", url, models=(MODEL,))
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
        "acknowledged": len(acknowledged),
        "seconds": wall,
        "uploads_per_second": len(acknowledged) / wall,
        "latency_ms": {f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)} | {"max": float(ms.max())},
        **check,
    }


def fault_run(workdir: Path, url: str | None, bodies, labels, clients: int) -> dict[str, Any]:
    """SIGKILL when half the uploads are acknowledged, restart, check, and let the providers
    upload everything again."""
    server = ServerProcess(workdir / "cloud", url, models=(MODEL,))
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
        "--postgres",
        default=os.environ.get("NOISEVEIL_TEST_DATABASE_URL"),
        help="PostgreSQL URL of a role that may create databases (default: $NOISEVEIL_TEST_DATABASE_URL)",
    )
    args = parser.parse_args()
    print(f"encrypting {args.uploads} CIFAR-10 test images with {MODEL}'s demo key ...", flush=True)
    bodies, labels, classify_seconds = corpus(args.uploads)
    databases: dict[str, Any] = {"sqlite": lambda: None}
    if args.postgres:
        databases["postgresql"] = lambda: fresh_postgres_database(args.postgres)
    result: dict[str, Any] = {
        **provenance([load_dataset("cifar10").source_id], [MODEL]),
        "model": MODEL,
        "classification_alone": {
            "seconds_per_image": classify_seconds,
            "images_per_second": 1 / classify_seconds,
            "note": "the cloud model's forward pass, one image at a time on one thread, as the server does",
        },
        "databases": {},
    }
    for name, make_url in databases.items():
        print(f"{name}:", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"noiseveil-load-{name}-") as tmp:
            load = throughput_run(Path(tmp) / "load", make_url(), bodies, labels, args.clients)
            print(
                f"  {load['uploads_per_second']:.1f} uploads/s, p50/p95/p99 "
                + "/".join(f"{load['latency_ms'][p]:.1f}" for p in ("p50", "p95", "p99"))
                + " ms",
                flush=True,
            )
            print("  fault run: SIGKILL at half, restart ...", flush=True)
            fault = fault_run(Path(tmp) / "fault", make_url(), bodies, labels, args.clients)
            print(f"  {fault}", flush=True)
        result["databases"][name] = {"load": load, "fault": fault}
    write_result(RESULTS_DIR / "service" / "load-test.json", result)
    print(f"wrote {RESULTS_DIR / 'service' / 'load-test.json'}")


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

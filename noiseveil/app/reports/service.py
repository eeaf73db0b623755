"""The cloud service as run: the recorded session (``python scripts/service_session.py``), the load
and fault test (``python scripts/load_test.py``) and the operator's gallery
(``python scripts/screenshot_gallery.py``)."""

from __future__ import annotations

from typing import Any

from noiseveil.app.reports.markdown import Results, from_file, table, yes

READS = ("service/session.json", "service/load-test.json")
GALLERY = "service/gallery.png"


@from_file("service/session.json")
def session(results: Results, name: str, r: dict[str, Any]) -> str:
    return (
        f"**The cloud session, as run** (`{r['command']}`, {results.link(name)}; {r['images']} CIFAR-10 "
        f"test images with `{r['model']}`; the {r['recovered_images']} fetched images decrypted to the "
        f"originals bit for bit: {r['recovered_bit_for_bit']}):\n\n" + results.text("service/session.md")
    )


def _load_row(database: str, run: dict[str, Any], best: bool) -> list[str]:
    rate = f"{run['uploads_per_second']:.1f}"
    return [
        database,
        str(run["workers"]),
        f"{run['batch_wait_ms']} ms",
        f"**{rate}**" if best else rate,
        f"{100 * run['share_of_floor_one_at_a_time']:.0f} %",
        " / ".join(f"{run['latency_ms'][q]:.0f}" for q in ("p50", "p95", "p99")),
        yes(run["exactly_once_with_right_label"]),
    ]


def _fault_row(database: str, workers: str, fault: dict[str, Any]) -> list[str]:
    return [
        database,
        workers,
        f"{fault['killed_after_acknowledged']} acknowledged, {fault['acknowledged_lost']} lost, "
        f"{fault['acknowledged_corrupt']} corrupt",
        str(fault["stored_unacknowledged"]),
        yes(fault["exactly_once_with_right_label"]),
    ]


@from_file("service/load-test.json")
def load_and_faults(results: Results, name: str, r: dict[str, Any]) -> str:
    floor = r["classification_floor"]
    alone = floor["one_at_a_time"]
    batched = next(v for k, v in floor.items() if k.startswith("batches_of_"))
    header = [
        "database",
        "workers",
        "batch wait",
        "uploads/s",
        "of the floor",
        "p50 / p95 / p99 ms",
        "exactly once",
    ]
    rows = [
        _load_row(database, run, run == d["best"])
        for database, d in r["databases"].items()
        for run in d["load"]
    ]
    faults = [
        _fault_row(database, workers, fault)
        for database, d in r["databases"].items()
        for workers, fault in d["fault_by_workers"].items()
    ]
    clients = r["databases"][next(iter(r["databases"]))]["load"][0]["clients"]
    return (
        f"**Load and faults** (`{r['command']}`, {results.link(name)}; `{r['model']}` ciphertexts on "
        f"loopback from {clients} clients, which share the server's two cores). The floor, in the "
        f"same run: the cloud model's forward pass alone, {alone['images_per_second']:.0f} images/s "
        "one image at a time on one thread (what an upload cost before uploads shared a pass), "
        f"{batched['images_per_second']:.0f} images/s in batches of {clients}. Every upload is "
        "acknowledged only once its row is committed; concurrent uploads share one forward pass "
        "and one commit, waiting at most the batch wait for each other (`serve --batch-wait-ms`); "
        "`serve --workers` runs that many processes. Best per database in bold.\n\n"
        + table(header, rows)
        + "\n\n**SIGKILL when half the uploads are acknowledged** (the server and its workers), "
        "restart, then every provider uploads everything again:\n\n"
        + table(
            ["database", "workers", "at the kill", "stored, not yet acknowledged", "rerun: exactly once"],
            faults,
        )
    )


def gallery(results: Results) -> list[str]:
    if not results.exists(GALLERY):
        return []
    return [
        "**The operator's gallery** (`python scripts/screenshot_gallery.py`, headless Chromium):\n\n"
        f"![gallery]({results.path(GALLERY)})"
    ]


def sections(results: Results) -> list[str]:
    return session(results) + load_and_faults(results) + gallery(results)

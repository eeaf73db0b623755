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


def _database_row(database: str, d: dict[str, Any]) -> list[str]:
    load_run, fault = d["load"], d["fault"]
    return [
        database,
        f"{load_run['uploads']} from {load_run['clients']} clients",
        f"{load_run['uploads_per_second']:.1f}",
        " / ".join(f"{load_run['latency_ms'][q]:.0f}" for q in ("p50", "p95", "p99")),
        yes(load_run["exactly_once_with_right_label"]),
        f"{fault['killed_after_acknowledged']} acknowledged, {fault['acknowledged_lost']} lost, "
        f"{fault['acknowledged_corrupt']} corrupt; rerun: exactly once "
        + yes(fault["exactly_once_with_right_label"]),
    ]


@from_file("service/load-test.json")
def load_and_faults(results: Results, name: str, r: dict[str, Any]) -> str:
    alone = r["classification_alone"]
    header = [
        "database",
        "uploads",
        "uploads/s",
        "latency p50 / p95 / p99 ms",
        "each stored once, right label",
        "SIGKILL at half, restart",
    ]
    rows = [_database_row(database, d) for database, d in r["databases"].items()]
    return (
        f"**Load and faults** (`{r['command']}`, {results.link(name)}; `{r['model']}` ciphertexts on "
        "loopback, one server process). Classification alone, the floor: "
        f"{alone['images_per_second']:.0f} images/s ({1000 * alone['seconds_per_image']:.1f} ms each, "
        "one thread, one image at a time as the server runs it).\n\n" + table(header, rows)
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

"""Throughput and memory on this machine: the file pipeline (``python scripts/benchmark_throughput.py``,
``scripts/benchmark_memory.py``) and AVP's cost (``scripts/benchmark_avp.py``)."""

from __future__ import annotations

from typing import Any

from noiseveil.app.reports.markdown import Results, from_file, table

READS = ("benchmark/throughput-*.json", "benchmark/memory-*.json", "benchmark/avp-cost.json")


def throughput(results: Results) -> list[str]:
    rows = []
    for name, r in results.matching("benchmark/throughput-*.json"):
        share = r["encrypt_stage_share"]
        rows.append(
            [
                f"`{r['models'][0]}`",
                "x".join(map(str, r["image_shape"])),
                str(r["batch_size"]),
                f"{r['encrypt_images_per_second']:.1f}",
                f"{r['decrypt_images_per_second']:.1f}",
                f"{100 * share['nae_attack']:.0f} %",
                f"{100 * share['feature_extractor_and_encoder']:.0f} %",
                results.link(name),
            ]
        )
    if not rows:
        return []
    header = ["model", "image", "batch", "encrypt img/s", "decrypt img/s", "NAE share", "F+E share", "JSON"]
    return [
        "**Throughput** (`python scripts/benchmark_throughput.py --model ID`, NAE included, "
        "2 CPU cores):\n\n" + table(header, rows)
    ]


def memory(results: Results) -> list[str]:
    rows, commands = [], []
    for name, r in results.matching("benchmark/memory-*.json"):
        commands.append(f"`{r['command']}`")
        rows += [
            [
                f"`{r['models'][0]}`",
                f"{run['images']:,}",
                f"{run['peak_rss_mb']:.0f} MB",
                f"{run['seconds'] / 60:.1f} min",
                results.link(name),
            ]
            for run in r["runs"]
        ]
    if not rows:
        return []
    return [
        f"**Memory while encrypting a folder** ({', '.join(commands)}):\n\n"
        + table(["model", "images in folder", "peak RSS", "time", "JSON"], rows)
    ]


@from_file("benchmark/avp-cost.json")
def avp_cost(results: Results, name: str, b: dict[str, Any]) -> str:
    rows = [
        [
            f"`{row['model_id']}`",
            str(row["iterations"]),
            f"{row['encrypt_seconds_per_image']:.2f}",
            f"{1000 * row['decrypt_seconds_per_image']:.2f}",
            f"{row['encrypt_to_decrypt_ratio']:.0f}x",
        ]
        for row in b["runs"]
    ]
    return (
        f"**AVP's cost on this machine** (`{b['command']}`, {results.link(name)}; {b['runs'][0]['images']} "
        "images per batch, self-check included):\n\n"
        + table(["model", "K", "encrypt s / image", "decrypt ms / image", "encrypt/decrypt"], rows)
    )


def sections(results: Results) -> list[str]:
    return throughput(results) + memory(results) + avp_cost(results)

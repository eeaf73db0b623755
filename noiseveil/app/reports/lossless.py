"""Lossless RIC, the default preset, measured outside the RIC report: through the command line as
separate processes (``python scripts/evaluate_cli.py``), against the masked preset
(``python scripts/benchmark_lossless.py``) and the codec it compresses with
(``python scripts/benchmark_codecs.py``)."""

from __future__ import annotations

from typing import Any

from noiseveil.app.reports.markdown import Results, from_file, model_name, pct, table

READS = ("evaluate/cli-*.json", "benchmark/lossless-vs-masked-cifar10.json", "benchmark/lossless-codecs.json")


def cli_evaluations(results: Results) -> list[str]:
    rows = [
        [
            model_name(r["model"]),
            str(r["images"]),
            str(r["encryption_failures"]),
            pct(r["bit_exact_share"]),
            pct(r["label_agreement"]),
            pct(r["acc_plain"]),
            pct(r["acc_encrypted"]),
            f"{r['adp_percent']:.2f}",
            f"{r['ssim_cipher_vs_plain']['mean']:.4f}",
            f"`{r['command']}`",
            results.link(name),
        ]
        for name, r in results.matching("evaluate/cli-*.json")
    ]
    if not rows:
        return []
    header = ["model", "images", "refused", "bit-exact %", "label agreement %", "ACC_p %", "ACC_e %", "ADP %"]
    header += ["SSIM(cipher, plain)", "command", "JSON"]
    return [
        "**RIC lossless through the command line** (keygen, encrypt, classify and decrypt as separate "
        "processes, decryption with another thread count):\n\n" + table(header, rows)
    ]


def _rate_label(key: str) -> str:
    """A column of the throughput table: a rate (img/s) or a ratio (×) of two measured in the run."""
    if key.endswith("_images_per_second"):
        return key.removesuffix("_images_per_second").replace("_", " ") + " img/s"
    if key.endswith("_ms") or key.endswith("_ms_after"):  # what creating one file cost on the disk
        return key.replace("_ms", "").replace("_", " ") + " (ms)"
    return key.replace("_", " ").replace("api", "API") + " (×)"


def _rate(key: str, value: float) -> str:
    return f"{value:.1f}" if key.endswith("_images_per_second") else f"{value:.2f}"


@from_file("benchmark/lossless-vs-masked-cifar10.json")
def against_masked(results: Results, name: str, r: dict[str, Any]) -> str:
    models = list(r["rates"].values())
    keys = [k for k in models[0] if all(k in rates for rates in models)]  # measured for both
    ratios = r["ratio_lossless_to_masked"]
    rows = [  # a row per measure: there are more measures than models
        [_rate_label(k)]
        + [_rate(k, rates[k]) for rates in models]
        + [f"{ratios[k]:.2f}" if k in ratios and "_ms" not in k else "-"]  # not the disk's
        for k in keys
    ]
    header = ["measure", *map(model_name, r["rates"]), "lossless over masked"]
    stages = r["lossless_seconds_per_image_by_stage"]
    stage_rows = [[stage, f"{1e3 * v:.3f}"] for stage, v in stages.items()]
    return (
        f"**RIC throughput, lossless against masked** (`{r['command']}`, {r['images']} CIFAR-10 test "
        f"images, batch {r['batch_size']}, {r['torch_threads']} threads, one run; {results.link(name)}). "
        "Plain forward: the cloud classifier's forward pass alone, the floor; encrypt over one "
        "forward: what one encryption costs in those passes; files over API: the file pipeline "
        "(PNG files in and out) against the Python API on the same images:\n\n"
        + table(header, rows)
        + _attack_passes(models[0])
        + "\n\nWhere the lossless preset's time goes (ms per image, one batch):\n\n"
        + table(["stage", "ms per image"], stage_rows)
    )


def _attack_passes(rates: dict[str, float]) -> str:
    """The lossless attack's evaluated images an image (counted since its warm starts)."""
    if "attack_passes_per_image_first_batch" not in rates:
        return ""
    first = rates["attack_passes_per_image_first_batch"]
    later = rates["attack_passes_per_image_later_batches"]
    return (
        f"\n\nThe lossless preset's attack evaluated {first:.2f} images an image in the first batch "
        f"(from the keyed start) and {later:.2f} after it (warm starts: docs/schemes/ric.md)."
    )


@from_file("benchmark/lossless-codecs.json")
def codecs(results: Results, name: str, r: dict[str, Any]) -> str:
    rows = [
        [
            dataset,
            codec,
            f"{m['bits_per_sample_mean']:.2f}",
            f"{m['bits_per_sample_max']:.2f}",
            f"{m['encode_ms_per_image']:.2f}",
            f"{m['decode_ms_per_image']:.3f}",
        ]
        for dataset, by_codec in r["codecs"].items()
        for codec, m in by_codec.items()
    ]
    header = ["dataset", "codec", "bits/sample mean", "max", "encode ms/image", "decode ms/image"]
    return (
        f"**Lossless codecs for the lossless preset** (`{r['command']}`, {r['images_per_dataset']} test "
        f"images per dataset, round trips checked exact; {results.link(name)}):\n\n" + table(header, rows)
    )


def sections(results: Results) -> list[str]:
    return cli_evaluations(results) + against_masked(results) + codecs(results)

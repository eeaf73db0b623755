"""Lossless RIC on real photos at their native sizes (``python scripts/measure_photos.py``) and what
it costs there (``python scripts/benchmark_photos.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noiseveil.app.reports.markdown import Results, from_file, table, yes

READS = ("photos/ric-imagenet.json", "benchmark/photos.json")

LOWPASS, LOCAL = "low-pass (Gaussian σ 1.5) + stretch", "local contrast (5x5 std) + stretch"


def against_chance(check: dict[str, Any]) -> str:
    """An observer's check: |correlation| with the own plaintext (with another photo's)."""
    return f"{check['abs_correlation']['mean']:.4f} ({check['abs_correlation_chance']['mean']:.4f})"


def _sizes(per_photo: list[dict[str, Any]]) -> str:
    sizes = sorted({tuple(row["shape"][:2]) for row in per_photo}, key=lambda hw: hw[0] * hw[1])
    shown = f"{sizes[0][0]}x{sizes[0][1]}"
    return shown + (f" to {sizes[-1][0]}x{sizes[-1][1]}" if len(sizes) > 1 else "")


def _group_row(group: str, g: dict[str, Any]) -> list[str]:
    s, privacy = g["summary"], g["summary"]["privacy"]
    return [
        group,
        f"{s['images']} ({_sizes(g['per_photo'])})",
        str(s["encryption_failures"]),
        f"{100 * s['label_agreement']:.2f} %",
        f"{100 * (1 - s['label_agreement']):.2f} %",
        f"{100 * s['bit_exact_share']:.2f} %",
        f"{s['ssim_cipher_vs_plain']['mean']:.4f} (max {s['ssim_cipher_vs_plain']['max']:.4f})",
        against_chance(privacy[LOWPASS]),
        against_chance(privacy[LOCAL]),
    ]


@from_file("photos/ric-imagenet.json")
def native_sizes(results: Results, name: str, r: dict[str, Any]) -> str:
    """Label agreement, exactness and the observer's checks per group of photos, then decryption
    without the classifier and the ONNX/TorchScript imports."""
    header = [
        "photos",
        "images (HxW)",
        "refused",
        "label agreement",
        "labels changed (ADP)",
        "bit-exact",
        "SSIM(cipher, plain)",
        "low-pass: abs. corr. (chance)",
        "local contrast: abs. corr. (chance)",
    ]
    rows = [_group_row(group, g) for group, g in r["groups"].items()]
    d, imp = r["decryption_without_classifier"], r["imports"]
    grid = Path(r["grid"]).relative_to("results").as_posix()
    return (
        f"**Lossless RIC on real photos at their native sizes** (`{r['command']}`, "
        f"`{r['scheme_model']}` on `{r['classifier']}`, b = {r['digit_bits']}, one photo at a time "
        "through its PNG bytes; photos have no ground truth, so the accuracy drop is the share of "
        f"changed labels; chance = the same check against another photo; {results.link(name)}):\n\n"
        + table(header, rows)
        + f"\n\nDecryption with the classifier absent (a fresh `noiseveil decrypt` whose zoo holds "
        f"{', '.join(d['zoo_held'])} only): exit {d['exit_code']}, {d['recovered_bit_exact']} of "
        f"{d['photos']} recovered bit for bit. The same network exported with torch.onnx and with "
        f"torch.jit.trace and imported twice through `model add` ({imp['photos']} photos and faces): "
        "identical labels on the plaintexts "
        f"{yes(imp['onnx_plain_labels_equal_torchscript'])}, on their ciphertexts "
        f"{yes(imp['onnx_cipher_labels_equal_torchscript'])}, equal to the shipped network's "
        f"{yes(imp['imports_equal_shipped_on_plaintexts'])}; label agreement "
        + ", ".join(f"{k} {100 * v:.2f} %" for k, v in imp["label_agreement"].items())
        + ". Grid of four photos (plaintext | ciphertext | recovered):"
        + f"\n\n![photo grid]({results.path(grid)})"
    )


def png_encoders(enc: dict[str, Any]) -> str:
    """One row per PNG encoder: its time and size on the ciphertext and on the recovered photo."""
    rows = []
    for cipher, photo in zip(enc["png_ciphertext"], enc["png_recovered_photo"], strict=True):
        rows.append(
            [cipher["encoder"]]
            + [
                f"{x['seconds']:.2f} s, {x['bytes'] / 1e6:.1f} MB" + (" (chosen)" if x["chosen"] else "")
                for x in (cipher, photo)
            ]
        )
    return table(["PNG encoder", "ciphertext", "recovered photo"], rows)


def _cost_row(row: dict[str, Any]) -> list[str]:
    return [
        row["photo"],
        f"{row['megapixels']:.2f}",
        f"{1e3 * row['forward_seconds']:.0f}",
        f"{row['encrypt_seconds']:.2f}",
        f"{row['encrypt_seconds_per_megapixel']:.2f}",
        f"{row['encrypt_over_forward']:.0f}x",
        f"{row['forward_backward_passes']:.0f} + {row['forward_only_passes']:.0f}",
        f"{row['decrypt_megapixels_per_second_api']:.1f}",
        f"{row['decrypt_megapixels_per_second_files']:.1f}",
    ]


@from_file("benchmark/photos.json")
def cost(results: Results, name: str, r: dict[str, Any]) -> str:
    """Encryption against one forward pass, where the time goes, decryption speed, peak memory."""
    header = [
        "photo",
        "MP",
        "forward ms (floor)",
        "encrypt s",
        "s per MP",
        "encrypt / forward",
        "passes: fwd-bwd + fwd",
        "decrypt MP/s (API)",
        "decrypt MP/s (files)",
    ]
    big = r["photos"][-1]
    stages = [[k, f"{v:.2f}"] for k, v in big["stage_seconds"].items()]
    m, enc = r["peak_memory_12mp"], r["encoders"]
    webp = ", ".join(
        f"{'fast' if x['fast'] else 'best'}: {x['seconds']:.2f} s, {x['bits_per_sample']:.2f} bits/sample"
        for x in enc["webp_lossless"]
    )
    return (
        f"**What lossless RIC costs on photos** (`{r['command']}`, `{r['scheme_model']}`, "
        f"{r['machine']['torch_threads']} threads, one run per photo above 3 MP, else the median of 3; "
        "the upsampled photos are smoother than a camera's, so they compress better than real ones of "
        f"that size; {results.link(name)}):\n\n"
        + table(header, [_cost_row(row) for row in r["photos"]])
        + f"\n\nWhere the time of the {big['megapixels']:.0f} MP photo's encryption goes (seconds; "
        f"the rest of {big['encrypt_seconds']:.2f} s is the base class's bookkeeping and conversions):\n\n"
        + table(["stage", "seconds"], stages)
        + f"\n\nPeak resident memory of a fresh process, {big['megapixels']:.0f} MP photo: `encrypt` "
        f"{m['encrypt']['peak_rss_megabytes']:.0f} MB, `decrypt` "
        f"{m['decrypt']['peak_rss_megabytes']:.0f} MB.\n\nEncoders chosen by this measurement, "
        f"{big['megapixels']:.0f} MP photo (WebP lossless: {webp}):\n\n" + png_encoders(enc)
    )


def sections(results: Results) -> list[str]:
    return native_sizes(results) + cost(results)

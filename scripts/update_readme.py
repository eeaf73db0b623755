"""Regenerate the README's results section from results/*.json (no number is typed by hand).

    python scripts/update_readme.py

Replaces the text between <!-- results:start --> and <!-- results:end --> in README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def load(pattern: str) -> list[tuple[Path, dict]]:
    return [(p, json.loads(p.read_text())) for p in sorted(RESULTS.glob(pattern))]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def rel(p: Path) -> str:
    return f"[{p.name}]({p.relative_to(ROOT)})"


def shipped() -> set[str]:
    return set(json.loads((ROOT / "noiseveil" / "weights" / "manifest.json").read_text()))


def model_name(model_id: str) -> str:
    return f"`{model_id}`" if model_id in shipped() else f"`{model_id}` (not shipped)"


def section() -> str:
    parts = []
    for etc, title in (
        (False, "**Cloud classifiers** (plaintext-trained, `noiseveil train-classifier ID`):"),
        (
            True,
            "**EtC cloud classifiers** (trained on EtC images of the public demo key, `noiseveil train ID`):",
        ),
    ):
        rows = [
            [
                model_name(r["model_id"]),
                r["note"],
                f"{r['parameters']:,}",
                f"{100 * r['test_accuracy']:.2f} %",
                f"{r['train_seconds'] / 60:.1f} min",
                rel(p),
            ]
            for p, r in load("training/*.json")
            if "test_accuracy" in r and ("block_size" in r) == etc
        ]
        if rows:
            header = ["id", "what", "parameters", "test accuracy", "training time", "JSON"]
            parts.append(title + "\n\n" + table(header, rows))
    rows = []
    for p, r in load("training/ric-*.json"):
        if "curve" not in r:  # the lossless preset trains nothing
            continue
        last = r["curve"][-1] if r["curve"] else {}
        rows.append(
            [
                model_name(r["model_id"]),
                f"{r['parameters']:,}",
                str(r["config"]["steps"]),
                f"{r['train_seconds'] / 60:.1f} min",
                f"{last.get('val_psnr', float('nan')):.2f} dB",
                rel(p),
            ]
        )
    if rows:
        parts.append(
            "**RIC models, learned presets** (`noiseveil train ID`; validation uses fresh NAEs):\n\n"
            + table(["id", "parameters", "steps", "training time", "val PSNR (64 images)", "JSON"], rows)
        )
    parts += photos_report()
    parts += photos_benchmark()
    parts += lossless_report()
    parts += cli_evaluations()
    parts += lossless_benchmark()
    parts += codec_table()
    parts += ric_report()
    parts += security_report()
    rows = []
    for p, r in load("benchmark/throughput-*.json"):
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
                rel(p),
            ]
        )
    if rows:
        parts.append(
            "**Throughput** (`python scripts/benchmark_throughput.py --model ID`, NAE included, "
            "2 CPU cores):\n\n"
            + table(
                [
                    "model",
                    "image",
                    "batch",
                    "encrypt img/s",
                    "decrypt img/s",
                    "NAE share",
                    "F+E share",
                    "JSON",
                ],
                rows,
            )
        )
    rows, commands = [], []
    for p, r in load("benchmark/memory-*.json"):
        commands.append(f"`{r['command']}`")
        for run in r["runs"]:
            rows.append(
                [
                    f"`{r['models'][0]}`",
                    f"{run['images']:,}",
                    f"{run['peak_rss_mb']:.0f} MB",
                    f"{run['seconds'] / 60:.1f} min",
                    rel(p),
                ]
            )
    if rows:
        parts.append(
            f"**Memory while encrypting a folder** ({', '.join(commands)}):\n\n"
            + table(["model", "images in folder", "peak RSS", "time", "JSON"], rows)
        )
    for p, r in load("benchmark/training-step.json"):
        rows = [
            [
                model_name(run["model_id"]),
                f"{run['parameters']:,}",
                f"{run['step_seconds_median']:.2f} s",
                f"{run['minutes_per_epoch']:.1f} min",
                f"{run['ratio_to_fastest']:.1f}x",
                str(run["epochs_in_card"]),
            ]
            for run in r["runs"]
        ]
        parts.append(
            f"**Training step on this machine** (`{r['command']}`, one process; {rel(p)}):\n\n"
            + table(
                ["card", "parameters", "step (median)", "per CIFAR-10 epoch", "ratio", "epochs in card"], rows
            )
        )
    parts += ric_training_profile()
    parts += etc_report()
    parts += avp_report()
    parts += transnet_report()
    parts += service_report()
    parts += ray_benchmark()
    return "\n\n".join(parts)


def ric_training_profile() -> list[str]:
    """One RIC training step per preset and layout against one NAE generation."""
    parts = []
    for p, r in load("benchmark/ric-training-step-*.json"):
        rows = [
            [
                row["what"],
                row.get("preset", "-"),
                row.get("layout", "-"),
                f"{row['parameters']:,}" if "parameters" in row else "-",
                f"{row['seconds']:.3f} s",
                f"{row['ratio_to_shipped_step']:.2f}x",
            ]
            for row in r["rows"]
        ]
        parts.append(
            f"**RIC training profile** (`{r['command']}`, batch {r['batch_size']}, one process; "
            f"ratio to the shipped `{r['shipped_preset']}` channels-last step; {rel(p)}):\n\n"
            + table(["what", "preset", "layout", "parameters", "median", "ratio"], rows)
        )
    return parts


def lossless_report() -> list[str]:
    """The lossless preset's rows of the RIC report (Tables 1-3 figures, bit-exact share)."""
    found = load("ric/ric-report.json")
    if not found or "lossless" not in found[0][1]:
        return []
    p, r = found[0]
    ll = r["lossless"]
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    rows = [
        [
            model_name(m),
            res["ric"]["dataset"],
            str(res["ric"]["images"]),
            str(res["ric"]["nae_bits"]),
            pct(res["ric"]["bit_exact_share"]),
            pct(res["ric"]["lossy_share"]),
            str(res["ric"]["encryption_failures"]),
            pct(res["ric"]["acc_plain"]),
            pct(res["ric"]["acc_encrypted"]),
            f"{res['ric']['adp_percent']:.2f}",
            pct(res["ric"]["first_try_label_agreement"]),
            f"{res['ric']['image_bits_per_sample']['mean']:.2f} / {res['ric']['digit_bits']}",
            f"{res['ric']['ssim_cipher_vs_plain']['mean']:.4f}",
        ]
        for m, res in ll["in_dataset"].items()
    ]
    header = ["model", "dataset", "images", "NAE bits", "bit-exact %", "lossy %", "refused", "ACC_p %"]
    header += [
        "ACC_e %",
        "ADP %",
        "first-try label agreement %",
        "image bits/sample (of)",
        "SSIM(cipher, plain)",
    ]
    return [
        f"**RIC, lossless preset: the shipped defaults** (`{ll['command']}`; section of "
        f"[results/ric/report.md](results/ric/report.md), {rel(p)}):\n\n" + table(header, rows)
    ]


def cli_evaluations() -> list[str]:
    rows = []
    for p, r in load("evaluate/cli-*.json"):
        rows.append(
            [
                model_name(r["model"]),
                str(r["images"]),
                str(r["encryption_failures"]),
                f"{100 * r['bit_exact_share']:.2f}",
                f"{100 * r['label_agreement']:.2f}",
                f"{100 * r['acc_plain']:.2f}",
                f"{100 * r['acc_encrypted']:.2f}",
                f"{r['adp_percent']:.2f}",
                f"{r['ssim_cipher_vs_plain']['mean']:.4f}",
                f"`{r['command']}`",
                rel(p),
            ]
        )
    if not rows:
        return []
    header = ["model", "images", "refused", "bit-exact %", "label agreement %", "ACC_p %", "ACC_e %", "ADP %"]
    header += ["SSIM(cipher, plain)", "command", "JSON"]
    return [
        "**RIC lossless through the command line** (keygen, encrypt, classify and decrypt as separate "
        "processes, decryption with another thread count):\n\n" + table(header, rows)
    ]


def against_chance(check: dict) -> str:
    """An observer's check: |correlation| with the own plaintext (with another photo's)."""
    return f"{check['abs_correlation']['mean']:.4f} ({check['abs_correlation_chance']['mean']:.4f})"


def photos_report() -> list[str]:
    """Lossless RIC on real photos at their native sizes (scripts/measure_photos.py)."""
    found = load("photos/ric-imagenet.json")
    if not found:
        return []
    p, r = found[0]
    lowpass, local = "low-pass (Gaussian σ 1.5) + stretch", "local contrast (5x5 std) + stretch"
    rows = []
    for group, g in r["groups"].items():
        s, privacy = g["summary"], g["summary"]["privacy"]
        sizes = sorted({tuple(row["shape"][:2]) for row in g["per_photo"]}, key=lambda hw: hw[0] * hw[1])
        shown = f"{sizes[0][0]}x{sizes[0][1]}" + (
            f" to {sizes[-1][0]}x{sizes[-1][1]}" if len(sizes) > 1 else ""
        )
        rows.append(
            [
                group,
                f"{s['images']} ({shown})",
                str(s["encryption_failures"]),
                f"{100 * s['label_agreement']:.2f} %",
                f"{100 * (1 - s['label_agreement']):.2f} %",
                f"{100 * s['bit_exact_share']:.2f} %",
                f"{s['ssim_cipher_vs_plain']['mean']:.4f} (max {s['ssim_cipher_vs_plain']['max']:.4f})",
                against_chance(privacy[lowpass]),
                against_chance(privacy[local]),
            ]
        )
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
    d, imp = r["decryption_without_classifier"], r["imports"]
    return [
        f"**Lossless RIC on real photos at their native sizes** (`{r['command']}`, "
        f"`{r['scheme_model']}` on `{r['classifier']}`, b = {r['digit_bits']}, one photo at a time "
        "through its PNG bytes; photos have no ground truth, so the accuracy drop is the share of "
        f"changed labels; chance = the same check against another photo; {rel(p)}):\n\n"
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
        + f". Grid of four photos (plaintext | ciphertext | recovered): "
        f"[{Path(r['grid']).name}]({r['grid']})."
    ]


def png_sizes(rows: list[dict]) -> str:
    return ", ".join(f"level {x['level']}: {x['seconds']:.2f} s, {x['bytes'] / 1e6:.1f} MB" for x in rows)


def photos_benchmark() -> list[str]:
    """What lossless RIC costs on photos (scripts/benchmark_photos.py)."""
    found = load("benchmark/photos.json")
    if not found:
        return []
    p, r = found[0]
    rows = [
        [
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
        for row in r["photos"]
    ]
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
    m = r["peak_memory_12mp"]
    enc = r["encoders"]
    webp = ", ".join(
        f"{'fast' if x['fast'] else 'best'}: {x['seconds']:.2f} s, {x['bits_per_sample']:.2f} bits/sample"
        for x in enc["webp_lossless"]
    )
    return [
        f"**What lossless RIC costs on photos** (`{r['command']}`, `{r['scheme_model']}`, "
        f"{r['machine']['torch_threads']} threads, one run per photo above 3 MP, else the median of 3; "
        "the upsampled photos are smoother than a camera's, so they compress better than real ones of "
        f"that size; {rel(p)}):\n\n"
        + table(header, rows)
        + f"\n\nWhere the time of the {big['megapixels']:.0f} MP photo's encryption goes (seconds; "
        f"the rest of {big['encrypt_seconds']:.2f} s is the base class's bookkeeping and conversions):\n\n"
        + table(["stage", "seconds"], stages)
        + f"\n\nPeak resident memory of a fresh process, {big['megapixels']:.0f} MP photo: `encrypt` "
        f"{m['encrypt']['peak_rss_megabytes']:.0f} MB, `decrypt` "
        f"{m['decrypt']['peak_rss_megabytes']:.0f} MB. Encoders chosen by this measurement: ciphertext "
        f"PNG {png_sizes(enc['png_ciphertext'])}; recovered photo PNG "
        f"{png_sizes(enc['png_recovered_photo'])}; WebP lossless {webp}."
    ]


def codec_table() -> list[str]:
    found = load("benchmark/lossless-codecs.json")
    if not found:
        return []
    p, r = found[0]
    rows = [
        [
            dataset,
            codec,
            f"{m['bits_per_sample_mean']:.2f}",
            f"{m['bits_per_sample_max']:.2f}",
            f"{m['encode_ms_per_image']:.2f}",
            f"{m['decode_ms_per_image']:.3f}",
        ]
        for dataset, codecs in r["codecs"].items()
        for codec, m in codecs.items()
    ]
    header = ["dataset", "codec", "bits/sample mean", "max", "encode ms/image", "decode ms/image"]
    return [
        f"**Lossless codecs for the lossless preset** (`{r['command']}`, {r['images_per_dataset']} test "
        f"images per dataset, round trips checked exact; {rel(p)}):\n\n" + table(header, rows)
    ]


def lossless_benchmark() -> list[str]:
    found = load("benchmark/lossless-vs-masked-cifar10.json")
    if not found:
        return []
    p, r = found[0]
    keys = list(r["ratio_lossless_to_masked"])
    rows = [[model_name(m)] + [f"{rates[k]:.1f}" for k in keys] for m, rates in r["rates"].items()]
    rows.append(["ratio"] + [f"{r['ratio_lossless_to_masked'][k]:.1f}x" for k in keys])
    header = ["model"] + [k.replace("_images_per_second", "").replace("_", " ") + " img/s" for k in keys]
    stages = r["lossless_seconds_per_image_by_stage"]
    stage_rows = [[name, f"{1e3 * v:.3f}"] for name, v in stages.items()]
    return [
        f"**RIC throughput, lossless against masked** (`{r['command']}`, {r['images']} CIFAR-10 test "
        f"images, batch {r['batch_size']}, {r['torch_threads']} threads, one run; {rel(p)}):\n\n"
        + table(header, rows)
        + "\n\nWhere the lossless preset's time goes (ms per image, one batch):\n\n"
        + table(["stage", "ms per image"], stage_rows)
    ]


def ric_report() -> list[str]:
    """The RIC paper's Tables 1-4 and the λ sweep, from results/ric/ric-report.json."""
    found = load("ric/ric-report.json")
    if not found:
        return []
    p, r = found[0]
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    rows = []
    for m, res in r["in_dataset"].items():
        for method, row in (("RIC", res["ric"]), ("4-bit LSB w/ NAE", res["lsb_baseline"])):
            rows.append(
                [
                    model_name(m) if method == "RIC" else "",
                    row.get("dataset", res["ric"]["dataset"]),
                    method,
                    str(row["images"]),
                    pct(row["acc_plain"]),
                    pct(row["acc_encrypted"]),
                    f"{row['adp_percent']:.2f}",
                    f"{row['psnr_db']['mean']:.2f}",
                    f"{row['ssim']['mean']:.4f}",
                    f"{row['lpips_style']['mean']:.4f}",
                    f"{row['ssim_cipher_vs_plain']['mean']:.4f}",
                ]
            )
    header = ["model", "dataset", "method", "images", "ACC_p %", "ACC_e %", "ADP %", "PSNR dB", "SSIM"]
    header += ["LPIPS-style", "SSIM(cipher, plain)"]
    parts = [
        f"**RIC, the paper's Tables 1 and 2, learned presets** (`{r['command']}`; full report with "
        "Tables 3-4, "
        f"the λ sweep, privacy checks and figures: [results/ric/report.md](results/ric/report.md), "
        f"{rel(p)}):\n\n" + table(header, rows)
    ]
    rows = [
        [
            row["ablation"],
            f"{row['train_seconds'] / 60:.1f} min",
            pct(row["acc_encrypted"]),
            f"{row['adp_percent']:.2f}",
            f"{row['psnr_db']['mean']:.2f}",
        ]
        for row in r["ablation"]["rows"]
    ]
    parts.append(
        f"**RIC, Table 4 ablation** (paper structure, {r['budget']['ablation_steps']} steps each "
        f"from scratch, `{r['ablation']['model']}`'s data):\n\n"
        + table(["variant", "training", "ACC_e %", "ADP %", "PSNR dB"], rows)
    )
    rows = [
        [str(row["lam"]), pct(row["acc_encrypted"]), f"{row['adp_percent']:.2f}"]
        + [f"{row['psnr_db']['mean']:.2f}"]
        for row in r["lam_sweep"]["rows"]
    ]
    parts.append(
        f"**RIC, λ sweep** (`{r['lam_sweep']['model']}`, fine-tuned {r['budget']['sweep_steps']} "
        "steps at each other λ):\n\n" + table(["λ", "ACC_e %", "ADP %", "PSNR dB"], rows)
    )
    return parts


def security_report() -> list[str]:
    """The RIC attack suite's headline rows, from results/security/security-report.json."""
    found = load("security/security-report.json")
    if not found:
        return []
    p, r = found[0]
    rows = []
    for m, res in r["models"].items():
        for name, a in res["attacks"].items():
            c = a.get("control", {}).get("ssim")
            gain = f"{c['gain']:+.4f} ± {c['gain_stderr']:.4f}" if c else "-"
            ssim, psnr = f"{a['ssim']['mean']:.4f}", f"{a['psnr_db']['mean']:.2f}"
            rows.append([model_name(m), name, ssim, psnr, gain])
    commands = sorted({f"`{res['command']}`" for res in r["models"].values()})
    return [
        f"**RIC security** ({', '.join(commands)}; full report: [results/security/report.md]"
        f"(results/security/report.md), {rel(p)}; a leak must beat the label-only row, and "
        "information about the image beyond its label shows as an SSIM gain over another test "
        "image of the same label):\n\n"
        + table(["model", "attack", "SSIM mean", "PSNR dB mean", "SSIM gain over a same-label image"], rows)
    ]


def etc_report() -> list[str]:
    """The EtC paper's Tables II-IV and attack table, from results/etc/etc-report.json."""
    found = load("etc/etc-report.json")
    if not found:
        return []
    p, r = found[0]
    rows = [
        [
            model_name(a["model"]),
            a["encryption"],
            f"{a['parameters']:,}",
            f"{a['train_minutes']:.1f} min",
            f"{100 * a['accuracy']:.2f}",
            f"{100 * a['accuracy_jpeg_q85']:.2f}",
            f"{100 * a['accuracy_jpeg_q80']:.2f}",
        ]
        for a in r["accuracy"]
    ]
    header = [
        "model",
        "trained on",
        "parameters",
        "training time",
        "accuracy %",
        "JPEG QF85 %",
        "JPEG QF80 %",
    ]
    out = [
        f"**EtC, the paper's Tables II and III** (`{r['command']}`, CIFAR-10 test set, block "
        f"{r['block_size']}; full report: [results/etc/report.md](results/etc/report.md), {rel(p)}):\n\n"
        + table(header, rows)
    ]
    mb = r["file_sizes"]["megabytes"]
    rows = [[codec, f"{mb['plain'][codec]:.2f}", f"{mb['etc'][codec]:.2f}"] for codec in mb["plain"]]
    out.append(
        f"**EtC, Table IV**: size in MB of all {r['file_sizes']['images']:,} CIFAR-10 images:\n\n"
        + table(["codec", "plain", "EtC"], rows)
    )
    rob = r["robustness"]
    rows = [
        [name, f"{a['ssim']['mean']:.4f}", f"{a['psnr_db']['mean']:.2f}"]
        for name, a in rob["attacks"].items()
    ]
    out.append(
        f"**Attacks on EtC images** ({rob['images']} test images; a leak must beat the label-only row):\n\n"
        + table(["attack", "SSIM mean", "PSNR dB mean"], rows)
    )
    return out


def attack_rows(attacks: dict[str, dict]) -> list[list[str]]:
    """Attack, SSIM, PSNR and the same-label control's gain: one row per attack."""
    return [
        [
            name,
            f"{a['ssim']['mean']:.4f}",
            f"{a['psnr_db']['mean']:.2f}",
            f"{a['control']['ssim']['gain']:+.4f} ± {a['control']['ssim']['gain_stderr']:.4f}"
            if "ssim" in a.get("control", {})
            else "-",
        ]
        for name, a in attacks.items()
    ]


def attack_verdict(result: dict, own: str, other: str, gain_over: str | None = None) -> str:
    """The attack table and which attacks beat the label-only baseline and are image-specific."""
    rows = attack_rows(result["attacks"])
    return (
        table(["attack", "SSIM", "PSNR dB", f"SSIM gain over a same-label {gain_over or own}"], rows)
        + "\n\nBeat the label-only baseline: "
        + ("; ".join(result["beating_label_only"]) or "none")
        + f". Closer to their own {own} than to another {other} (3 standard errors): "
        + ("; ".join(result["image_specific"]) or "none")
        + "."
    )


def avp_report() -> list[str]:
    """The AVP paper's Tables 1, 2, 4-5 and the security rows, from results/avp/avp-report.json."""
    found = load("avp/avp-report.json")
    if not found:
        return []
    p, r = found[0]
    t1, t2, t45, sec = r["table1"], r["table2"], r["table4_5"], r["security"]
    rows = [
        [
            f"LFW faces ({t1['images']} test images, `avp-lfw`)",
            f"{t1['ssim_e']['mean']:.4f}",
            f"{t1['ssim_d']['mean']:.4f}",
            f"{t1['psnr_d_db']['mean']:.2f}",
            f"{t1['cosine_similarity']['mean']:.4f}",
            "-",
        ],
        [
            f"CIFAR-10 ({t45['images']} test images, `avp-cifar10`)",
            f"{t45['ssim_e']['mean']:.4f}",
            f"{t45['ssim_d']['mean']:.4f}",
            f"{t45['psnr_d_db']['mean']:.2f}",
            "-",
            f"{100 * t45['accuracy_plain']:.2f} / {100 * t45['accuracy_encrypted']:.2f}",
        ],
    ]
    from noiseveil.app.reports.avp import PAPER_TABLE1, PAPER_TABLE45

    def span(values: list[float], fmt: str) -> str:
        return f"{min(values):{fmt}}-{max(values):{fmt}}"

    faces = list(PAPER_TABLE1.values())
    rows.append(
        [
            "paper, LFW (4 face models at 112x112, 11 M-parameter key)",
            *(span([f[i] for f in faces], ".3f") for i in (0, 1)),
            "-",
            span([f[2] for f in faces], ".3f"),
            "-",
        ]
    )
    for model, (plain, enc, ssim_e, ssim_d) in PAPER_TABLE45.items():
        rows.append(
            [
                f"paper, CIFAR-10 ({model})",
                f"{ssim_e:.3f}",
                f"{ssim_d:.3f}",
                "-",
                "-",
                f"{plain:.2f} / {enc:.2f}",
            ]
        )
    out = [
        f"**AVP, the paper's Tables 1 and 4-5** (`{r['command']}`; full report with figures: "
        f"[results/avp/report.md](results/avp/report.md), {rel(p)}):\n\n"
        + table(["data", "SSIM_e", "SSIM_d", "PSNR_d dB", "cos-sim", "accuracy % plain / encrypted"], rows)
    ]
    out.append(
        f"**AVP, Table 2** (identification, {t2['people']} people, {t2['probe_images']} probe images, "
        f"{t2['distractors']} distractors):\n\n"
        + table(
            ["Original", "AVP-ONE", "AVP-ALL"],
            [[f"{100 * t2[k]:.1f} %" for k in ("original", "AVP-ONE", "AVP-ALL")]],
        )
    )
    cost = load("benchmark/avp-cost.json")
    if cost:
        bp, b = cost[0]
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
        out.append(
            f"**AVP's cost on this machine** (`{b['command']}`, {rel(bp)}; {b['runs'][0]['images']} "
            "images per batch, self-check included):\n\n"
            + table(["model", "K", "encrypt s / image", "decrypt ms / image", "encrypt/decrypt"], rows)
        )
    n = len(sec["keys"])
    diagonal = [sec["cross_decryption"][i][i]["ssim"] for i in range(n)]
    off = [sec["cross_decryption"][i][j]["ssim"] for i in range(n) for j in range(n) if i != j]
    out.append(
        f"**AVP security**: {n} keys from different initialisations; decrypting with the key that "
        f"encrypted gives SSIM {min(diagonal):.3f} to {max(diagonal):.3f}, with any other key "
        f"{min(off):.3f} to {max(off):.3f}. The attacks on key 1's ciphertexts of "
        f"{sec['attack_images']} test faces (keys 2 and up are the attacker's own):\n\n"
        + attack_verdict(sec, "face", "of the same person")
    )
    return out


def transnet_calibration() -> list[str]:
    """The three candidate units of L_feat at α = 0.005 (results/transnet/feature-scale.json)."""
    out = []
    for p, r in load("transnet/feature-scale.json"):
        rows = [
            [
                name,
                f"{c['scale']:.4g}",
                f"{c['final_l_feat']:.3g}",
                f"{100 * c['accuracy']:.1f}",
                f"{c['ssim_to_plain']['mean']:.3f}",
                f"{c['psnr_to_plain_db']['mean']:.2f}",
            ]
            for name, c in r["candidates"].items()
        ]
        out.append(
            f"**TransNet, calibrating L_feat's units** (`{r['command']}`, {rel(p)}): h_θ trained "
            f"{r['steps']} steps at α = {r['alpha']} against `cifar10-resnet20` (plain accuracy "
            f"{100 * r['plain_accuracy']:.1f} % on these {r['images']} test images); "
            f"chosen: {r['chosen']}.\n\n"
            + table(
                ["candidate", "divisor", "final L_feat", "ψ accuracy %", "SSIM to plain", "PSNR dB"], rows
            )
        )
    return out


def transnet_report() -> list[str]:
    """TransNet's Table I beside the paper's, and the ITN attack, from results/transnet."""
    found = load("transnet/transnet-report.json")
    if not found:
        return transnet_calibration()
    from noiseveil.app.reports.transnet import PAPER_TABLE1, itn_results

    p, r = found[0]
    alphas = r["alphas"]
    rows = []
    for psi, t in r["table1"].items():
        got = t["alphas"]
        rows.append(
            [f"`{psi}`", f"{100 * t['plain_accuracy']:.2f}"]
            + [f"{100 * got[f'{a:g}']['accuracy']:.2f}" if f"{a:g}" in got else "-" for a in alphas]
        )
        paper = PAPER_TABLE1.get(psi)
        if paper is None:  # a cloud the paper did not use
            continue
        rows.append(
            [f"paper ({'ResNet-20' if 'resnet' in psi else 'VGG16-BN'}, 200 epochs)", f"{paper['plain']:.2f}"]
            + [f"{paper[a]:.2f}" if a in paper else "-" for a in alphas]
        )
    looks = "\n".join(
        f"- `{psi}`: "
        + "; ".join(
            f"α = {a}: {v['ssim_to_plain']['mean']:.3f} / {v['psnr_to_plain_db']['mean']:.2f} dB / "
            f"{v['spread_across_inputs']:.2f}"
            for a, v in t["alphas"].items()
        )
        for psi, t in r["table1"].items()
    )
    state = "" if r["complete"] else " **Partial: the sweep is not finished.**"
    out = [
        f"**TransNet, Table I** (accuracy % of ψ on {r['budget']['test_images']} protected CIFAR-10 test "
        f"images; `{r['command']}`; report with figures: [results/transnet/report.md]"
        f"(results/transnet/report.md), {rel(p)}).{state}\n\n"
        + table(["ψ", "plain", *(f"α = {a:g}" for a in alphas)], rows)
        + "\n\nProtected image against its plaintext (SSIM / PSNR, mean) / how much h_θ(x) depends "
        "on x (per-pixel standard deviation across the test images, 8-bit levels; near 0: h_θ "
        f"collapsed to one image whatever the input):\n\n{looks}"
    ]
    for psi, alpha, res in itn_results(r):
        out.append(
            f"**TransNet, ITN attack on ψ = `{psi}`'s h_θ at α = {alpha}** ({len(res['itn_psnr_db'])} "
            "test images):\n\n" + attack_verdict(res, "plaintext", "of the same label", gain_over="image")
        )
    return out + transnet_calibration()


def service_report() -> list[str]:
    """The cloud service: the recorded session, the load and fault test, the gallery."""
    out = []
    for p, r in load("service/session.json"):
        out.append(
            f"**The cloud session, as run** (`{r['command']}`, {rel(p)}; {r['images']} CIFAR-10 test "
            f"images with `{r['model']}`; the {r['recovered_images']} fetched images decrypted to the "
            f"originals bit for bit: {r['recovered_bit_for_bit']}):\n\n"
            + (ROOT / "results" / "service" / "session.md").read_text().strip()
        )
    for p, r in load("service/load-test.json"):
        alone = r["classification_alone"]
        rows = []
        for name, d in r["databases"].items():
            load_run, fault = d["load"], d["fault"]
            rows.append(
                [
                    name,
                    f"{load_run['uploads']} from {load_run['clients']} clients",
                    f"{load_run['uploads_per_second']:.1f}",
                    " / ".join(f"{load_run['latency_ms'][q]:.0f}" for q in ("p50", "p95", "p99")),
                    yes(load_run["exactly_once_with_right_label"]),
                    f"{fault['killed_after_acknowledged']} acknowledged, {fault['acknowledged_lost']} lost, "
                    f"{fault['acknowledged_corrupt']} corrupt; rerun: exactly once "
                    + yes(fault["exactly_once_with_right_label"]),
                ]
            )
        out.append(
            f"**Load and faults** (`{r['command']}`, {rel(p)}; `{r['model']}` ciphertexts on loopback, "
            "one server process). Classification alone, the floor: "
            f"{alone['images_per_second']:.0f} images/s ({1000 * alone['seconds_per_image']:.1f} ms each, "
            "one thread, one image at a time as the server runs it).\n\n"
            + table(
                [
                    "database",
                    "uploads",
                    "uploads/s",
                    "latency p50 / p95 / p99 ms",
                    "each stored once, right label",
                    "SIGKILL at half, restart",
                ],
                rows,
            )
        )
    if (ROOT / "results" / "service" / "gallery.png").exists():
        out.append(
            "**The operator's gallery** (`python scripts/screenshot_gallery.py`, headless Chromium):\n\n"
            "![gallery](results/service/gallery.png)"
        )
    return out


def ray_benchmark() -> list[str]:
    """The file pipeline on Ray against one process (images/s, overhead per batch)."""
    out = []
    for p, r in load("benchmark/ray-pipeline.json"):
        rows = [
            [
                run["run"],
                f"`{run['model_id']}`",
                f"{run['images_per_second']:.1f}",
                f"{run['median_seconds']:.2f} s"
                + (f" (median of {run['timed_runs']})" if run["timed_runs"] > 1 else ""),
            ]
            for run in r["runs"]
        ]
        overhead = ", ".join(f"`{m}` {1000 * s:.0f} ms" for m, s in r["overhead_per_batch_seconds"].items())
        out.append(
            f"**The file pipeline on Ray** (`{r['command']}`, {rel(p)}; encryption of the same "
            f"{r['runs'][0]['images']} CIFAR-10 test images, {r['batch_size']} per batch = per task, "
            f"{r['machine']['cpu_count']} CPU cores, one run). RIC on 2 Ray workers is "
            f"{r['speedup_2_workers_over_1']:.2f}x one worker and "
            f"{r['speedup_2_workers_over_one_process']:.2f}x one process using both cores (PyTorch's "
            "threads parallelise one small batch less well than two processes do). Overhead per "
            f'batch, one worker against one single-threaded process: {overhead}. "cold" is a '
            "first job: Ray starts the workers and each loads the model.\n\n"
            + table(["configuration", "model", "images/s", "time"], rows)
        )
    return out + ray_faults()


def ray_faults() -> list[str]:
    """Ray against one process (identical outputs) and a worker killed mid-run."""
    out = []
    for p, r in load("benchmark/ray-fault.json"):
        rows = [
            [
                f"`{run['model']}`",
                str(run["files"]),
                yes(run["ciphertext_bytes_identical"])
                if run["one_process_rerun_ciphertexts_identical"]
                else "differ, as two one-process runs do",
                yes(run["failed_lines_identical"] and run["summary_identical"]),
                yes(run["labels_identical"]),
                yes(run["recovered_bytes_identical"]),
                f"{run['recovered_exactly_ray']} of {run['files']}",
            ]
            for run in r["identical_to_one_process"]
        ]
        k = r["killed_worker"]
        out.append(
            f"**Ray against one process, and a worker killed** (`{r['command']}`, {rel(p)}; every "
            "command a fresh CLI process, `--ray auto` on a local `ray start --head`). RIC draws a "
            "fresh nonce per image, so its ciphertexts differ from run to run by design; what they "
            "decrypt to and how the cloud labels them must not.\n\n"
            + table(
                [
                    "model",
                    "files",
                    "same ciphertext bytes",
                    "same FAILED lines, summary",
                    "same labels",
                    "same recovered bytes",
                    "recovered exactly (Ray)",
                ],
                rows,
            )
            + f"\n\nSIGKILL of a busy worker during `{k['model']}` encryption of {k['images']} images "
            f"in batches of {k['batch_size']} (killed: {yes(k['worker_killed'])}): the run exited "
            f"{k['run_exit_code']} with {k['failed_lines']} `FAILED` lines "
            f"({k['failed_lines_say_worker_lost']} saying the worker was lost; no traceback: "
            f"{yes(not k['traceback_printed'])}) and left "
            f"{k['outputs_left']} outputs, of which {k['outputs_left_recovered_exactly']} decrypt to their "
            f"plaintext bit for bit; inputs unchanged: {yes(k['inputs_unchanged'])}. The `--skip-existing` "
            f'rerun: "{k["rerun_summary"]}"; finished outputs untouched: '
            f"{yes(k['finished_outputs_untouched_by_rerun'])}; all {k['images']} then decrypt exactly: "
            f"{yes(k['all_recovered_exactly_after_rerun'])}."
        )
    return out


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{section()}\n{END}{tail}")
    print("README results section regenerated")


if __name__ == "__main__":
    main()

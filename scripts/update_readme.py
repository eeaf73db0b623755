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


def rel(p: Path) -> str:
    return f"[{p.name}]({p.relative_to(ROOT)})"


def shipped() -> set[str]:
    return set(json.loads((ROOT / "noiseveil" / "weights" / "manifest.json").read_text()))


def model_name(model_id: str) -> str:
    return f"`{model_id}`" if model_id in shipped() else f"`{model_id}` (not shipped)"


def section() -> str:
    parts = []
    rows = []
    for p, r in load("training/*.json"):
        if "test_accuracy" in r:
            rows.append(
                [
                    f"`{r['model_id']}`",
                    r["note"],
                    f"{r['parameters']:,}",
                    f"{100 * r['test_accuracy']:.2f} %",
                    f"{r['train_seconds'] / 60:.1f} min",
                    rel(p),
                ]
            )
    if rows:
        parts.append(
            "**Cloud classifiers** (plaintext-trained, `noiseveil train-classifier ID`):\n\n"
            + table(["id", "what", "parameters", "test accuracy", "training time", "JSON"], rows)
        )
    rows = []
    for p, r in load("training/ric-*.json"):
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
            "**RIC models** (`noiseveil train ID`; validation uses fresh NAEs):\n\n"
            + table(["id", "parameters", "steps", "training time", "val PSNR (64 images)", "JSON"], rows)
        )
    rows = []
    for p, r in load("evaluate/*.json"):
        rows.append(
            [
                model_name(r["scheme_model"]),
                r["dataset"],
                str(r["images"]),
                f"{100 * r['acc_plain']:.2f}",
                f"{100 * r['acc_encrypted']:.2f}",
                f"{r['adp_percent']:.2f}",
                f"{100 * r['label_agreement']:.2f}",
                str(r.get("first_try_label_changes", "")),
                f"{r['recovery_psnr_db']['mean']:.2f}",
                f"{r['recovery_ssim']['mean']:.4f}",
                f"{r['ssim_cipher_vs_plain']['mean']:.4f}",
                rel(p),
            ]
        )
    if rows:
        parts.append(
            "**Evaluation** (`noiseveil evaluate -m ID -n N`; RIC Tables 1 and 2 on our data):\n\n"
            + table(
                [
                    "model",
                    "dataset",
                    "images",
                    "ACC_p %",
                    "ACC_e %",
                    "ADP %",
                    "label agreement %",
                    "first tries re-encrypted",
                    "recovery PSNR dB",
                    "recovery SSIM",
                    "SSIM(cipher, plain)",
                    "JSON",
                ],
                rows,
            )
        )
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
    rows = []
    for p, r in load("benchmark/memory-*.json"):
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
            "**Memory while encrypting a folder** (`python scripts/benchmark_memory.py`):\n\n"
            + table(["model", "images in folder", "peak RSS", "time", "JSON"], rows)
        )
    return "\n\n".join(parts)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{section()}\n{END}{tail}")
    print("README results section regenerated")


if __name__ == "__main__":
    main()

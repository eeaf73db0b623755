"""The zoo's training records (results/training/*.json, written by ``noiseveil train`` and
``train-classifier``) and what a training step costs on this machine (results/benchmark/)."""

from __future__ import annotations

from noiseveil.app.reports.markdown import Results, model_name, table

READS = ("training/*.json", "benchmark/training-step.json", "benchmark/ric-training-step-*.json")

CLASSIFIER_GROUPS = (
    (False, "**Cloud classifiers** (plaintext-trained, `noiseveil train-classifier ID`):"),
    (True, "**EtC cloud classifiers** (trained on EtC images of the public demo key, `noiseveil train ID`):"),
)


def classifiers(results: Results) -> list[str]:
    """The cloud classifiers' test accuracy and cost, plaintext-trained and EtC-trained apart."""
    parts = []
    for etc, title in CLASSIFIER_GROUPS:
        rows = [
            [
                model_name(r["model_id"]),
                r["note"],
                f"{r['parameters']:,}",
                f"{100 * r['test_accuracy']:.2f} %",
                f"{r['train_seconds'] / 60:.1f} min",
                results.link(name),
            ]
            for name, r in results.matching("training/*.json")
            if "test_accuracy" in r and ("block_size" in r) == etc
        ]
        if rows:
            header = ["id", "what", "parameters", "test accuracy", "training time", "JSON"]
            parts.append(title + "\n\n" + table(header, rows))
    return parts


def ric_presets(results: Results) -> list[str]:
    """The learned RIC presets' training: steps, time and the last validation PSNR."""
    rows = []
    for name, r in results.matching("training/ric-*.json"):
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
                results.link(name),
            ]
        )
    if not rows:
        return []
    header = ["id", "parameters", "steps", "training time", "val PSNR (64 images)", "JSON"]
    return [
        "**RIC models, learned presets** (`noiseveil train ID`; validation uses fresh NAEs):\n\n"
        + table(header, rows)
    ]


def training_step(results: Results) -> list[str]:
    """One training step of each card on this machine, and what a CIFAR-10 epoch costs."""
    parts = []
    for name, r in results.matching("benchmark/training-step.json"):
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
        header = ["card", "parameters", "step (median)", "per CIFAR-10 epoch", "ratio", "epochs in card"]
        parts.append(
            f"**Training step on this machine** (`{r['command']}`, one process; {results.link(name)}):\n\n"
            + table(header, rows)
        )
    return parts


def ric_training_profile(results: Results) -> list[str]:
    """One RIC training step per preset and layout against one NAE generation."""
    parts = []
    for name, r in results.matching("benchmark/ric-training-step-*.json"):
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
            f"ratio to the shipped `{r['shipped_preset']}` channels-last step; {results.link(name)}):\n\n"
            + table(["what", "preset", "layout", "parameters", "median", "ratio"], rows)
        )
    return parts


def sections(results: Results) -> list[str]:
    parts = classifiers(results) + ric_presets(results)
    return parts + training_step(results) + ric_training_profile(results)

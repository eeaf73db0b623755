"""The RIC paper's tables on our data: ``noiseveil report ric``.

Liu et al. (ACM TOMM 2024), regenerated with every shipped RIC model (``ric-<dataset>``):

- Table 1: ACC_p, ACC_e and ADP of the plaintext-trained cloud classifier;
- Table 2: recovery PSNR / SSIM / LPIPS-style distance, with "4-bit LSB w/ NAE" (the image's
  top four bits in the NAE's low four bits) as the simple baseline row;
- Table 3: cross-dataset generalisation, every model on every dataset's test images and on
  photographs bundled with scikit-image, each resized to the model's input;
- Table 4: ablation (NAE w/ SRL, RNI w/ SRL, NAE w/o SRL), the paper's network structure
  (``fast`` preset) trained from scratch with one budget each, on CIFAR-10;
- Fig. 7: λ sweep, the shipped CIFAR-10 model fine-tuned at each λ;
- Fig. 4/5: plaintext, ciphertext, recovered and amplified difference;
- privacy: what contrast stretching, low-pass filtering and local contrast of the ciphertext
  show, against a chance baseline, next to the same model with its keyed pad switched off;
- learning curves (validation PSNR against training time) of the shipped models;
- beyond the paper, the lossless preset (the default ``ric-<dataset>`` models): Tables 1-3 with
  the bit-exact share, the bits per sample the compressed images need and the lossy fallbacks.

``--stages`` re-measures some stages only and keeps the others from the saved JSON, each with
the provenance of the run that measured it.

Every evaluation uses ``fixed_subset(len(test), images, seed=0)`` of the test set. Everything
goes to ``results/ric/``: ``ric-report.json`` (with provenance), ``report.md``, ``figures/``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noiseveil.app.figures import line_plot, picture_grid
from noiseveil.app.provenance import RESULTS_DIR, provenance, stages_to_run, write_result
from noiseveil.app.reports.markdown import Results
from noiseveil.attacks.filters import LOWPASS, PROCESSING, privacy_checks
from noiseveil.classifiers.training import predict
from noiseveil.crypto.keys import new_nonce
from noiseveil.data import ImageDataset, fixed_subset, load_dataset, to_tensor, to_uint8
from noiseveil.data.images import NATURAL_IMAGES, conform, natural_images
from noiseveil.evaluation import Evaluation, evaluate_images
from noiseveil.metrics import accuracy_drop_proportion, describe, psnr, ssim
from noiseveil.schemes.ric import PRESETS, RIC, RICScheme
from noiseveil.schemes.ric_training import PRESET_LR, RICTrainConfig, fit_ric, pool_tag
from noiseveil.timing import Stages
from noiseveil.zoo import SCHEME_CARDS, ZooError, load_scheme, read_manifest

ABLATIONS = {  # the paper's Table 4 rows, as RICConfig changes to the "fast" preset
    "NAE w/ SRL": {},
    "RNI w/ SRL": {"adversarial_noise": False},
    "NAE w/o SRL": {"srl": False},
}
DIFFERENCE_GAIN = 50  # the amplified difference |x̃ − x| x 50 of the picture grids
# The paper's in-dataset recovery PSNR (Table 2), the reference each model is measured against.
PAPER_PSNR_DB = {"cifar10": ("SVHN", 51.46), "mnist": ("SVHN", 51.46), "lfw": ("VGGFace2", 48.04)}
SESSION_BUDGET_S = 3 * 3600  # the 3-hour training budget per shipped model


@dataclass(frozen=True)
class RICReportBudget:
    images: int = 500  # test images per evaluation (the whole test set if smaller)
    lams: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
    sweep_steps: int = 200  # fine-tuning steps of the CIFAR-10 model at each other λ
    ablation_steps: int = 800  # training steps of each ablation model, from scratch
    grid_images: int = 6
    pool_per_class: int | None = None  # NAE pool of the short trainings (None: the model card's)
    val_images: int | None = None  # validation images of the short trainings (None: the card's)


BUDGETS = {
    "ci": RICReportBudget(
        images=12,
        lams=(0.6, 0.7),
        sweep_steps=2,
        ablation_steps=2,
        grid_images=3,
        pool_per_class=2,
        val_images=4,
    ),
    "default": RICReportBudget(),
    # the paper's test sets whole (10,000 CIFAR-10 images); Table 4 at the shipped model's steps
    "paper": RICReportBudget(images=10000, sweep_steps=1000, ablation_steps=3000),
}
SCALES = "test images, the λ sweep's fine-tuning steps and each Table 4 model's training steps"

STAGES = ("tables 1-3", "table 4", "lambda sweep", "lossless")


def shipped_ric_models(scheme: str = "ric") -> list[str]:
    """Shipped models of the learned presets (``ric``) or of the lossless preset (``ric-lossless``)."""
    manifest = read_manifest()
    return [m for m, card in SCHEME_CARDS.items() if card.scheme == scheme and m in manifest]


def test_images(data: ImageDataset, n: int) -> tuple[np.ndarray, np.ndarray]:
    idx = fixed_subset(len(data.x_test), n, seed=0)
    return data.x_test[idx], data.y_test[idx]


def quality(recovered: np.ndarray, plain: np.ndarray) -> dict[str, Any]:
    """Table 2's three measures, per-image statistics each."""
    from noiseveil.perceptual import lpips_distance

    return {
        "psnr_db": describe(psnr(recovered, plain)),
        "ssim": describe(ssim(recovered, plain)),
        "lpips_style": describe(lpips_distance(recovered, plain)),
    }


def scheme_row(ev: Evaluation) -> dict[str, Any]:
    """Table 1 and 2 figures of one evaluation, plus what the cloud sees (cipher SSIM)."""
    s = ev.summary()
    return {
        **{k: s[k] for k in ("images", "label_agreement", "first_try_label_changes") if k in s},
        **{k: s[k] for k in ("acc_plain", "acc_encrypted", "adp_percent") if k in s},
        "first_try_label_agreement": 1.0 - ev.first_try_failed / len(ev.plain),
        **quality(ev.recovered, ev.plain),
        "ssim_cipher_vs_plain": s["ssim_cipher_vs_plain"],
        "encrypt_images_per_second": s["encrypt_images_per_second"],
        "decrypt_images_per_second": s["decrypt_images_per_second"],
    }


def lsb_baseline(scheme: RICScheme, plain: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """ "4-bit LSB w/ NAE": ciphertext = NAE's top 4 bits | image's top 4 bits; no networks."""
    classifier = scheme.cloud_classifier()
    x = to_tensor(plain)
    targets = predict(classifier, x)
    key = scheme.keygen()
    nonces = [new_nonce() for _ in range(len(plain))]
    batches = range(0, len(x), 64)
    nae = to_uint8(torch.cat([scheme.nae_for(key, nonces[i : i + 64], targets[i : i + 64]) for i in batches]))
    cipher = (nae & 0xF0) | (plain >> 4)
    recovered = ((cipher & 0x0F) << 4) | 0x08  # the middle of each 16-level bin
    pred = predict(classifier, to_tensor(cipher)).numpy()
    acc_p, acc_e = float((targets.numpy() == labels).mean()), float((pred == labels).mean())
    return {
        "images": len(plain),
        "acc_plain": acc_p,
        "acc_encrypted": acc_e,
        "adp_percent": accuracy_drop_proportion(acc_p, acc_e),
        "label_agreement": float((pred == targets.numpy()).mean()),
        **quality(recovered, plain),
        "ssim_cipher_vs_plain": describe(ssim(cipher, plain)),
    }


def without_pad(scheme: RICScheme) -> RICScheme:
    """The same trained networks with the keyed pad switched off: the leaky reference."""
    model = RIC(replace(scheme.model.cfg, keyed_pad=False))
    model.load_state_dict(scheme.model.state_dict())
    # A variant measured here, not shipped: it promises no fidelity (promised_psnr 0).
    return replace(scheme, model=model.eval(), model_id=scheme.model_id + "-no-pad", promised_psnr=0.0)


# -- Tables 1 and 2, privacy and picture grids, per shipped model ---------------------------------
def in_dataset(model_id: str, data: ImageDataset, budget: RICReportBudget, figures: Path) -> dict[str, Any]:
    scheme = load_scheme(model_id, of_class=RICScheme)
    plain, labels = test_images(data, budget.images)
    ev = evaluate_images(scheme, plain, labels)
    row = {"model": model_id, "dataset": data.name, "classifier": scheme.classifier_id, **scheme_row(ev)}
    row["lam"] = scheme.model.cfg.lam
    baseline = lsb_baseline(scheme, plain, labels)
    privacy, shown = privacy_checks(ev.cipher, plain)
    result = {"ric": row, "lsb_baseline": baseline, "privacy": {"with keyed pad": privacy}}
    k = budget.grid_images
    diff = np.abs(ev.recovered.astype(int) - plain.astype(int)) * DIFFERENCE_GAIN
    diff = np.clip(diff, 0, 255).astype(np.uint8)
    picture_grid(
        [plain[:k], ev.cipher[:k], ev.recovered[:k], diff[:k]],
        ["plaintext", "ciphertext", "recovered", f"|difference| x{DIFFERENCE_GAIN}"],
        figures / f"recovery-{data.name}.png",
    )
    rows, titles = [plain[:k], ev.cipher[:k]], ["plaintext", "ciphertext"]
    rows += [shown[name][:k] for name in PROCESSING]
    titles += list(PROCESSING)
    if scheme.model.cfg.keyed_pad:  # the same networks without the pad: what the pad hides
        leaky = evaluate_images(without_pad(scheme), plain, labels, checked=False)
        result["privacy"]["same networks, pad off"], leaky_shown = privacy_checks(leaky.cipher, plain)
        result["privacy_pad_off_recovery_psnr_db"] = describe(psnr(leaky.recovered, plain))
        rows += [leaky.cipher[:k]] + [leaky_shown[name][:k] for name in PROCESSING]
        titles += ["pad off:\nciphertext"] + [f"pad off:\n{name}" for name in PROCESSING]
    short = [t.split(" (")[0].replace(" + stretch", "") for t in titles]
    picture_grid(rows, short, figures / f"privacy-{data.name}.png")
    return result


# -- the lossless preset (beyond the paper): Tables 1-3 -------------------------------------------
def lossless_in_dataset(model_id: str, data: ImageDataset, budget: RICReportBudget, figures: Path) -> dict:
    """Table 1-2 row of a lossless model, the bits its images need, privacy checks and a grid."""
    from noiseveil.io.codecs import lossless_encode

    scheme = load_scheme(model_id)
    plain, labels = test_images(data, budget.images)
    ev = evaluate_images(scheme, plain, labels)
    summary = ev.summary()
    image_bits = [8 * len(lossless_encode(image)) / image.size for image in plain]
    row = {
        "model": model_id,
        "dataset": data.name,
        "classifier": SCHEME_CARDS[model_id].classifier_id,
        "digit_bits": scheme.digit_bits,
        "nae_bits": 8 - scheme.digit_bits,
        **scheme_row(ev),
        **{k: summary[k] for k in ("bit_exact_share", "lossy_share", "encryption_failures")},
        "image_bits_per_sample": describe(image_bits),
    }
    privacy, shown = privacy_checks(ev.cipher, plain)
    k = budget.grid_images
    rows, titles = [plain[:k], ev.cipher[:k], ev.recovered[:k]], ["plaintext", "ciphertext", "recovered"]
    rows += [shown[name][:k] for name in PROCESSING]
    titles += [t.split(" (")[0].replace(" + stretch", "") for t in PROCESSING]
    picture_grid(rows, titles, figures / f"lossless-{data.name}.png")
    print(
        f"  {model_id}: bit-exact {100 * row['bit_exact_share']:.2f} %, ADP {row['adp_percent']:.2f} %",
        flush=True,
    )
    return {"ric": row, "privacy": {"lossless": privacy}}


def lossless(model_ids: list[str], datasets: dict[str, ImageDataset], budget: RICReportBudget, figures: Path):
    data_ids = sorted(d.source_id for d in datasets.values())
    classifiers = [SCHEME_CARDS[m].classifier_id for m in model_ids]
    return {
        **provenance(data_ids, [*model_ids, *classifiers]),
        "models": model_ids,
        "images": budget.images,
        "in_dataset": {
            m: lossless_in_dataset(m, datasets[SCHEME_CARDS[m].dataset], budget, figures) for m in model_ids
        },
        "cross_dataset": cross_dataset(model_ids, datasets, budget),
    }


# -- Table 3: cross-dataset -----------------------------------------------------------------------
def cross_dataset(
    model_ids: list[str], datasets: dict[str, ImageDataset], budget: RICReportBudget
) -> list[dict[str, Any]]:
    sources = {name: test_images(d, budget.images)[0] for name, d in datasets.items()}
    rows = []
    for model_id in model_ids:
        scheme = load_scheme(model_id)
        for source, images in [*sources.items(), ("scikit-image photos", natural_images())]:
            plain = conform(images, scheme.image_shape)
            ev = evaluate_images(scheme, plain, None)
            summary = ev.summary()
            rows.append(
                {
                    "model": model_id,
                    "images_from": source,
                    "images": len(plain),
                    "bit_exact_share": summary["bit_exact_share"],
                    "lossy_share": summary["lossy_share"],
                    "encryption_failures": summary["encryption_failures"],
                    "label_agreement": float((ev.pred_cipher == ev.pred_plain).mean()),
                    "psnr_db": describe(psnr(ev.recovered, plain)),
                    "ssim": describe(ssim(ev.recovered, plain)),
                }
            )
            print(f"  {model_id} on {source}: {rows[-1]['psnr_db']['mean']:.2f} dB", flush=True)
    return rows


# -- Table 4 and the λ sweep: short trainings -----------------------------------------------------
def _train(
    scheme: RICScheme,
    card_id: str,
    data: ImageDataset,
    steps: int,
    lr: float,
    checkpoint: Path,
    pool: int | None,
) -> dict:
    """A short training with the shipped model's card settings (batch, pool, augmentation)."""
    card = SCHEME_CARDS[card_id]
    cfg = RICTrainConfig(**{**card.train, "steps": steps, "lr": lr})
    cfg = replace(cfg, pool_per_class=pool) if pool is not None else cfg
    return fit_ric(scheme, data, cfg, checkpoint, cache_tag=pool_tag(card.classifier_id, scheme))


def ablation(model_id: str, data: ImageDataset, budget: RICReportBudget, runs: Path) -> list[dict[str, Any]]:
    """Table 4: the paper's structure ("fast" preset) with each ablation, one budget each."""
    shipped = load_scheme(model_id, of_class=RICScheme)
    plain, labels = test_images(data, budget.images)
    rows = []
    for name, change in ABLATIONS.items():
        cfg = replace(PRESETS["fast"], channels=shipped.model.cfg.channels, **change)
        scheme = replace(
            shipped, model=RIC(cfg), model_id=f"{model_id}-ablation", stats=Counter(), promised_psnr=0.0
        )
        slug = name.lower().replace("/", "").replace(" ", "-")
        ckpt = runs / f"ablation-{slug}.ckpt"
        steps, lr = budget.ablation_steps, PRESET_LR["fast"]
        report = _train(scheme, model_id, data, steps, lr, ckpt, budget.pool_per_class)
        ev = evaluate_images(scheme, plain, labels, checked=False)  # a research variant: measured as it is
        row = {"ablation": name, "train_seconds": report["train_seconds"], **scheme_row(ev)}
        rows.append({**row, "privacy": privacy_checks(ev.cipher, plain)[0]})
        print(f"  {name}: {rows[-1]['psnr_db']['mean']:.2f} dB", flush=True)
    return rows


def lam_sweep(model_id: str, data: ImageDataset, budget: RICReportBudget, runs: Path) -> list[dict[str, Any]]:
    """Fig. 7: the shipped model as shipped at its λ, fine-tuned from its weights at the others."""
    shipped = load_scheme(model_id, of_class=RICScheme)
    plain, labels = test_images(data, budget.images)
    rows = []
    for lam in budget.lams:
        scheme, seconds = shipped, 0.0
        if lam != shipped.model.cfg.lam:
            model = RIC(replace(shipped.model.cfg, lam=lam))
            model.load_state_dict(shipped.model.state_dict())
            scheme = replace(
                shipped, model=model, model_id=f"{model_id}-lam-{lam}", stats=Counter(), promised_psnr=0.0
            )
            lr = SCHEME_CARDS[model_id].train.get("lr", RICTrainConfig.lr)
            ckpt = runs / f"sweep-lam-{lam}.ckpt"
            report = _train(scheme, model_id, data, budget.sweep_steps, lr, ckpt, budget.pool_per_class)
            seconds = report["train_seconds"]
        ev = evaluate_images(scheme, plain, labels, checked=False)  # a research variant: measured as it is
        rows.append({"lam": lam, "fine_tune_seconds": seconds, **scheme_row(ev)})
        print(f"  λ {lam}: {rows[-1]['psnr_db']['mean']:.2f} dB, ADP {rows[-1]['adp_percent']:.2f} %")
    return rows


def learning_curves(model_ids: list[str]) -> dict[str, Any]:
    """Validation PSNR against training time of each shipped model, from its training JSON,
    and the slope over the last half of training (dB per doubling of training time)."""
    out = {}
    for model_id in model_ids:
        path = RESULTS_DIR / "training" / f"{model_id}.json"
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        curve = record["curve"]
        late = [p for p in curve if p["seconds"] >= curve[-1]["seconds"] / 2 and p["seconds"] > 0]
        slope = (
            float(np.polyfit(np.log2([p["seconds"] for p in late]), [p["val_psnr"] for p in late], 1)[0])
            if len(late) >= 3
            else None
        )
        out[model_id] = {
            "command": record["command"],
            "git_commit": record["git_commit"],
            "train_seconds": record["train_seconds"],
            "curve": [{k: p[k] for k in ("step", "seconds", "val_psnr")} for p in curve],
            "db_per_doubling_late": slope,
        }
    return out


def run(
    out_dir: Path = RESULTS_DIR / "ric",
    budget: RICReportBudget = RICReportBudget(),
    models: list[str] | None = None,
    runs: Path = Path("runs") / "ric-report",
    only_stages: list[str] | None = None,
) -> dict[str, Any]:
    """Every table and figure of the RIC paper for ``models`` (default: every shipped model of
    the learned presets) and the lossless preset's rows. ``only_stages`` (some of :data:`STAGES`)
    re-measures only those and keeps the rest from the saved ``ric-report.json``."""
    models = models or shipped_ric_models()
    if not models:
        raise ZooError("no shipped RIC model to report on")
    wanted, kept, kept_seconds = stages_to_run(out_dir / "ric-report.json", only_stages, STAGES)
    lossless_models = shipped_ric_models("ric-lossless") if "lossless" in wanted else []
    loaded: dict[str, ImageDataset] = {}
    for m in models + lossless_models:
        name = SCHEME_CARDS[m].dataset
        loaded[name] = loaded.get(name) or load_dataset(name)
    datasets = {SCHEME_CARDS[m].dataset: loaded[SCHEME_CARDS[m].dataset] for m in models}
    lossless_datasets = {SCHEME_CARDS[m].dataset: loaded[SCHEME_CARDS[m].dataset] for m in lossless_models}
    classifiers = [SCHEME_CARDS[m].classifier_id for m in models]
    prov = provenance([d.source_id for d in datasets.values()], [*models, *classifiers])
    figures = out_dir / "figures"
    result: dict[str, Any] = {**prov, "budget": asdict(budget), "models": models}

    # Each finished stage is kept in ``runs`` so that a run stopped late (a crash, the end of a
    # session) resumes after it; only a run of the same commit, budget and models may reuse it.
    identity = {
        "git_commit": prov["git_commit"],
        "budget": asdict(budget),
        "models": models,
        "out": str(out_dir),
    }
    stages = Stages(cache=runs / "stages.json", identity=identity)
    timed, timings = stages.run, stages.seconds

    if only_stages:  # the kept stages keep their own provenance and timings
        result = kept
        result["stage_provenance"].update(dict.fromkeys(wanted, prov))
        timings.update(kept_seconds)
    main = "ric-cifar10-masked" if "ric-cifar10-masked" in models else models[0]
    if "tables 1-3" in wanted:
        result["in_dataset"] = {
            m: timed(f"tables 1-2 {m}", in_dataset, m, datasets[SCHEME_CARDS[m].dataset], budget, figures)
            for m in models
        }
        result["cross_dataset"] = timed("table 3", cross_dataset, models, datasets, budget)
    if "table 4" in wanted:
        main_data = datasets[SCHEME_CARDS[main].dataset]
        result["ablation"] = {
            "model": main,
            "rows": timed("table 4", ablation, main, main_data, budget, runs),
        }
    if "lambda sweep" in wanted:
        main_data = datasets[SCHEME_CARDS[main].dataset]
        rows = timed("lambda sweep", lam_sweep, main, main_data, budget, runs)
        result["lam_sweep"] = {"model": main, "rows": rows}
    if "lossless" in wanted and lossless_models:
        result["lossless"] = timed("lossless", lossless, lossless_models, lossless_datasets, budget, figures)
    result["learning_curves"] = learning_curves(models)
    result["seconds"] = timings
    write_result(out_dir / "ric-report.json", result)
    render(result, out_dir)
    return result


def render(r: dict[str, Any], out_dir: Path) -> None:
    """Plots that need only the JSON, and report.md."""
    draw(r, out_dir)
    (out_dir / "report.md").write_text(markdown(r))


def draw(r: dict[str, Any], out_dir: Path) -> None:
    """The plots that need only the JSON: the λ sweep and the learning curves."""
    figures = out_dir / "figures"
    sweep = r["lam_sweep"]["rows"]
    lams = [row["lam"] for row in sweep]
    line_plot(
        {
            "ACC_e": (lams, [100 * row["acc_encrypted"] for row in sweep]),
            "first-try label agreement": (lams, [100 * row["first_try_label_agreement"] for row in sweep]),
        },
        "λ",
        "%",
        figures / "lambda-sweep.png",
        right=({"recovery PSNR": (lams, [row["psnr_db"]["mean"] for row in sweep])}, "dB"),
    )
    curves = r["learning_curves"]
    if curves:
        series = {
            m: ([p["seconds"] / 60 for p in c["curve"]], [p["val_psnr"] for p in c["curve"]])
            for m, c in curves.items()
        }
        line_plot(series, "training time (min)", "validation PSNR (dB)", figures / "learning-curves.png")


def markdown(r: dict[str, Any]) -> str:
    """The Markdown report: every number read from the result dict ``run`` just wrote."""
    from noiseveil.perceptual import LPIPS_LABEL

    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    b = r["budget"]
    lines = [
        "# RIC: the tables of Liu et al. (2024) on our data",
        "",
        f"Generated by `{r['command']}` at commit `{r['git_commit']}` on {r['date']}; data "
        f"{', '.join(r['data'])}; models {', '.join(f'`{m}`' for m in r['models'])}. Each evaluation "
        f"uses the fixed subset `fixed_subset(len(test), {b['images']}, seed=0)` of the test set "
        "(the whole set if smaller), a fresh key, and the data provider's re-encryption of an image "
        "whose ciphertext changes label (at most 4 tries). Timings: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in r["seconds"].items())
        + ".",
        "",
        "## Table 1: accuracy of the plaintext-trained cloud classifier (%)",
        "",
        "| dataset | model | classifier | λ | images | ACC_p | ACC_e | ADP | first-try label agreement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m, res in r["in_dataset"].items():
        row = res["ric"]
        lines.append(
            f"| {row['dataset']} | `{m}` | `{row['classifier']}` | {row['lam']} | {row['images']} | "
            f"{pct(row['acc_plain'])} | {pct(row['acc_encrypted'])} | {row['adp_percent']:.2f} | "
            f"{pct(row['first_try_label_agreement'])} |"
        )
    lines += [
        "",
        "## Table 2: recovery quality (mean over the images; 8-bit images)",
        "",
        f"LPIPS-style: {LPIPS_LABEL}.",
        "",
        "| dataset | method | PSNR dB | SSIM | LPIPS-style | ACC_e % | SSIM(ciphertext, plaintext) |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in r["in_dataset"].values():
        for method, row in (("RIC", res["ric"]), ("4-bit LSB w/ NAE", res["lsb_baseline"])):
            lines.append(
                f"| {res['ric']['dataset']} | {method} | {row['psnr_db']['mean']:.2f} | "
                f"{row['ssim']['mean']:.4f} | {row['lpips_style']['mean']:.4f} | "
                f"{pct(row['acc_encrypted'])} | {row['ssim_cipher_vs_plain']['mean']:.4f} |"
            )
    lines += [
        "",
        "The paper (GPU, 200 epochs) reports 51.46 dB / 0.9995 SSIM on SVHN and 48.04 dB on VGGFace2.",
        "",
    ]
    for res in r["in_dataset"].values():
        name = res["ric"]["dataset"]
        lines += [f"![recovery {name}](figures/recovery-{name}.png)", ""]
    lines += [
        "## Privacy: what simple processing of the ciphertext shows",
        "",
        "Mean SSIM and mean |correlation| of each processed ciphertext with its own plaintext, next "
        "to the same with another test image's plaintext (chance). A leak shows as a gap between "
        "the two. *Pad off* is the same trained networks with the keyed pad switched off, i.e. "
        "the plain residual blend x' = λ·n_adv + (1 − λ)·(x + e).",
        "",
        "| dataset | model | processing | SSIM | SSIM chance | abs. correlation | abs. correlation chance |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in r["in_dataset"].values():
        for variant, checks in res["privacy"].items():
            for proc, c in checks.items():
                lines.append(
                    f"| {res['ric']['dataset']} | {variant} | {proc} | {c['ssim']['mean']:.4f} | "
                    f"{c['ssim_chance']['mean']:.4f} | {c['abs_correlation']['mean']:.4f} | "
                    f"{c['abs_correlation_chance']['mean']:.4f} |"
                )
    lines.append("")
    for res in r["in_dataset"].values():
        name = res["ric"]["dataset"]
        lines += [f"![privacy {name}](figures/privacy-{name}.png)", ""]
    lines += [
        "## Table 3: cross-dataset generalisation (recovery PSNR dB / SSIM; label agreement %)",
        "",
        f"Images resized (bicubic, centre crop) and converted to each model's input; the photographs "
        f"are scikit-image's {', '.join(NATURAL_IMAGES)}.",
        "",
        "| model | images from | images | PSNR dB | SSIM | label agreement |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["cross_dataset"]:
        lines.append(
            f"| `{row['model']}` | {row['images_from']} | {row['images']} | {row['psnr_db']['mean']:.2f} | "
            f"{row['ssim']['mean']:.4f} | {pct(row['label_agreement'])} |"
        )
    ab = r["ablation"]
    lines += [
        "",
        f"## Table 4: ablation on `{ab['model']}`'s data "
        f"({b['ablation_steps']} training steps each, from scratch)",
        "",
        "The paper's network structure (`fast` preset, no residuals, no pad), one budget per row. "
        "RNI: raw noise instead of the NAE; w/o SRL: the decoder gets [x'_q, n_adv] instead of "
        "(x'_q − λ·n_adv)/(1 − λ).",
        "",
        "| variant | training time | ACC_e % | ADP % | first-try label agreement % | PSNR dB | SSIM "
        f"| SSIM(ciphertext, plaintext) | {LOWPASS}: abs. correlation (chance) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ab["rows"]:
        lines.append(
            f"| {row['ablation']} | {row['train_seconds'] / 60:.1f} min | {pct(row['acc_encrypted'])} | "
            f"{row['adp_percent']:.2f} | {pct(row['first_try_label_agreement'])} | "
            f"{row['psnr_db']['mean']:.2f} | "
            f"{row['ssim']['mean']:.4f} | {row['ssim_cipher_vs_plain']['mean']:.4f} | "
            f"{row['privacy'][LOWPASS]['abs_correlation']['mean']:.4f} "
            f"({row['privacy'][LOWPASS]['abs_correlation_chance']['mean']:.4f}) |"
        )
    sw = r["lam_sweep"]
    lines += [
        "",
        f"## Fig. 7: λ sweep on `{sw['model']}`",
        "",
        f"At its own λ the shipped model as shipped; at every other λ, its weights fine-tuned for "
        f"{b['sweep_steps']} steps.",
        "",
        "| λ | fine-tuning | ACC_e % | ADP % | first-try label agreement % | PSNR dB | SSIM |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in sw["rows"]:
        lines.append(
            f"| {row['lam']} | {row['fine_tune_seconds'] / 60:.1f} min | {pct(row['acc_encrypted'])} | "
            f"{row['adp_percent']:.2f} | {pct(row['first_try_label_agreement'])} | "
            f"{row['psnr_db']['mean']:.2f} | "
            f"{row['ssim']['mean']:.4f} |"
        )
    lines += ["", "![λ sweep](figures/lambda-sweep.png)", "", "## Learning curves", ""]
    lines += [
        "| model | training command | commit | training time | final val PSNR dB "
        "| dB per doubling of time (late) |"
    ]
    lines += ["|---|---|---|---|---|---|"]
    for m, c in r["learning_curves"].items():
        slope = c["db_per_doubling_late"]
        lines.append(
            f"| `{m}` | `{c['command']}` | `{c['git_commit'][:7]}` | {c['train_seconds'] / 60:.1f} min | "
            f"{c['curve'][-1]['val_psnr']:.2f} | {'-' if slope is None else f'{slope:+.2f}'} |"
        )
    lines += ["", "![learning curves](figures/learning-curves.png)", ""]
    lines += distance_to_paper(r)
    lines += lossless_markdown(r.get("lossless"))
    return "\n".join(lines)


def lossless_table(ll: dict[str, Any]) -> list[str]:
    """The shipped defaults in one table: labels kept, images back bit for bit, what it costs."""
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    lines = [
        "| dataset | model | NAE bits | images | ACC_p | ACC_e | ADP | first-try label agreement "
        "| bit-exact % | lossy % | refused | image bits/sample (mean, max) | PSNR dB (min) | SSIM "
        "| SSIM(ciphertext, plaintext) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, res in ll["in_dataset"].items():
        row = res["ric"]
        bits = row["image_bits_per_sample"]
        lines.append(
            f"| {row['dataset']} | `{m}` | {row['nae_bits']} | {row['images']} | {pct(row['acc_plain'])} | "
            f"{pct(row['acc_encrypted'])} | {row['adp_percent']:.2f} | "
            f"{pct(row['first_try_label_agreement'])} | "
            f"{pct(row['bit_exact_share'])} | {pct(row['lossy_share'])} | {row['encryption_failures']} | "
            f"{bits['mean']:.2f}, {bits['max']:.2f} of {row['digit_bits']} | {row['psnr_db']['min']:.2f} | "
            f"{row['ssim']['mean']:.4f} | {row['ssim_cipher_vs_plain']['mean']:.4f} |"
        )
    return lines


def headline(results: Results) -> str:
    """The lossless preset's table with its command: the front page's one table of results."""
    r = results.first()
    ll = r.get("lossless") if r else None
    if not ll:
        return ""
    return (
        f"Lossless RIC, the default preset (`{ll['command']}` at commit `{ll['git_commit'][:7]}`, "
        f"{ll['images']} test images per dataset):\n\n" + "\n".join(lossless_table(ll))
    )


def lossless_markdown(ll: dict[str, Any] | None) -> list[str]:
    """The lossless preset's section: Tables 1-3 with bit-exact shares and bits per sample."""
    if not ll:
        return []
    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    lines = [
        "## The lossless preset (beyond the paper; the default `ric-<dataset>` models)",
        "",
        f"Generated by `{ll['command']}` at commit `{ll['git_commit']}` on {ll['date']}, on "
        f"`fixed_subset(len(test), {ll['images']}, seed=0)` of each test set. Each sample "
        "of a ciphertext is L·a + d: d, the low bits, carries the WebP-lossless image sealed with "
        "ChaCha20-Poly1305; a, the high bits, is a discrete NAE. Decryption reads d back: no "
        "classifier, no network, no floating point. Same images and metrics as Tables 1-3.",
        "",
        *lossless_table(ll),
    ]
    lines += [
        "",
        "PSNR is capped at 100 dB for identical images. Privacy checks of the ciphertexts "
        "(processing, SSIM and |correlation| with the plaintext against chance):",
        "",
        "| dataset | processing | SSIM | SSIM chance | abs. correlation | abs. correlation chance |",
        "|---|---|---|---|---|---|",
    ]
    for res in ll["in_dataset"].values():
        for proc, c in res["privacy"]["lossless"].items():
            lines.append(
                f"| {res['ric']['dataset']} | {proc} | {c['ssim']['mean']:.4f} | "
                f"{c['ssim_chance']['mean']:.4f} "
                f"| {c['abs_correlation']['mean']:.4f} | {c['abs_correlation_chance']['mean']:.4f} |"
            )
    lines += ["", "Cross-dataset (Table 3):", ""]
    lines += ["| model | images from | images | bit-exact % | lossy % | refused | label agreement % |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for row in ll["cross_dataset"]:
        lines.append(
            f"| `{row['model']}` | {row['images_from']} | {row['images']} | {pct(row['bit_exact_share'])} | "
            f"{pct(row['lossy_share'])} | {row['encryption_failures']} | {pct(row['label_agreement'])} |"
        )
    lines.append("")
    for res in ll["in_dataset"].values():
        name = res["ric"]["dataset"]
        lines += [f"![lossless {name}](figures/lossless-{name}.png)", ""]
    return lines


def sweep_best(r: dict[str, Any]) -> list[str]:
    """The λ sweep's highest-PSNR row, because lowering λ is the cheapest route to the paper's
    fidelity and its price (more first-try label changes) is measured in the same row."""
    sweep = r.get("lam_sweep") or {}
    if not sweep.get("rows"):
        return []
    best = max(sweep["rows"], key=lambda row: row["psnr_db"]["mean"])
    return [
        f"- λ sweep: `{sweep['model']}` at λ {best['lam']} reaches {best['psnr_db']['mean']:.2f} dB "
        f"with ADP {best['adp_percent']:.2f} % after re-encryption, at a first-try label agreement "
        f"of {100 * best['first_try_label_agreement']:.2f} %."
    ]


def distance_to_paper(r: dict[str, Any]) -> list[str]:
    """How far each model is from the paper's PSNR, and what its learning curve projects for
    the 3-hour budget (a log-linear extrapolation of the late curve, not a measurement)."""
    lines = ["## Distance to the paper's fidelity", ""]
    for m, res in r["in_dataset"].items():
        row, curve = res["ric"], r["learning_curves"].get(m)
        name, paper = PAPER_PSNR_DB.get(row["dataset"], ("SVHN", 51.46))
        gap = paper - row["psnr_db"]["mean"]
        text = (
            f"- `{m}`: {row['psnr_db']['mean']:.2f} dB, {abs(gap):.2f} dB "
            f"{'below' if gap > 0 else 'above'} the paper's {paper:.2f} dB on {name}"
        )
        if curve and curve["db_per_doubling_late"] is not None:
            slope, spent = curve["db_per_doubling_late"], curve["train_seconds"]
            gain = slope * np.log2(SESSION_BUDGET_S / spent)
            text += (
                f"; its validation curve gained {slope:+.2f} dB per doubling of training time over "
                f"the last half of {spent / 60:.0f} min, so training for the full 3 hours would "
                f"add about {gain:+.2f} dB if that rate held"
            )
        lines.append(text + ".")
    lines += sweep_best(r)
    lines += [
        "",
        "The bound that matters is 8-bit rounding: decryption divides the ciphertext's rounding "
        "error by 1 − λ, so the untrained (identity) model already sits at the first point of "
        "each learning curve, and training adds what the decoder learns about images on top. "
        "The λ sweep shows the lever that moves the bound itself.",
        "",
    ]
    return lines

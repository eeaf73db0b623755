"""RIC security suite: ``noiseveil report security`` (RIC section 6, appendices A and B).

For every shipped RIC model, on its dataset's test images encrypted with a fixed victim key
(SHA-256 of a published string, so runs repeat; no attack is given it except through the
known pairs of the KPA):

- brute force: random 256-bit keys and keys one bit away from the victim's, Fig. 8 style;
  the α of Theorem 6.1 by NES (see :mod:`noiseveil.attacks.nes` for our reading);
- cloud attack (eq. 25, 26) on ciphertexts of training images the cloud holds;
- known-plaintext attack (eq. 17): N pairs of (ciphertext, recovered image) of the victim key,
  tested on other ciphertexts of that key and of another key;
- ITN attack: pairs made with the attacker's own keys;
- the label-only baseline every attack must beat to count as a leak.

Writes ``results/security/security-report.json``, ``report.md`` and ``figures/``. Each model's
entry carries its own command, commit, date and budget, and a run for some models (``--models``)
replaces only their entries: a slow model (LFW's 64x64 networks) can be run in another session.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from noiseveil.app.figures import key_sweep_plot, picture_grid
from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.app.reports.markdown import Results, verdict_table
from noiseveil.attacks import (
    BruteForceAttack,
    CloudAttack,
    ITNAttack,
    KnownPlaintextAttack,
    LabelOnlyBaseline,
    beating_baseline,
    image_specific,
    pixels_of,
    same_label_control,
    score,
)
from noiseveil.attacks.nes import NoiseKeyedScheme, estimate_alpha
from noiseveil.classifiers.training import predict
from noiseveil.crypto.keys import Key
from noiseveil.data import PHOTOS, ImageDataset, fixed_subset, load_dataset, to_tensor
from noiseveil.metrics import describe
from noiseveil.progress import progress_bar
from noiseveil.schemes.base import Ciphertext, Scheme
from noiseveil.timing import Stages
from noiseveil.zoo import ZooError, load_scheme, read_manifest, shipped_schemes


@dataclass(frozen=True)
class SecurityBudget:
    """How much each attack may use; the defaults are what results/security was made with."""

    test_images: int = 200
    brute_force_images: int = 16  # every key decrypts these; one Φ chunk each (the sweep's cost)
    brute_force_keys: int = 200
    one_bit_keys: int = 32
    kpa_pairs: int = 500
    itn_pairs: int = 2000
    cloud_ciphertexts: int = 2000
    network_steps: int = 500
    nes_images: int = 4
    nes_samples: int = 50


BUDGETS = {
    "ci": SecurityBudget(
        test_images=4,
        brute_force_images=2,
        brute_force_keys=3,
        one_bit_keys=2,
        kpa_pairs=8,
        itn_pairs=8,
        cloud_ciphertexts=8,
        network_steps=2,
        nes_images=1,
        nes_samples=2,
    ),
    "default": SecurityBudget(),
    "paper": SecurityBudget(
        test_images=1000, brute_force_keys=1000, kpa_pairs=5000, itn_pairs=10000, network_steps=3000
    ),
}
SCALES = "test images, keys guessed, the attackers' pairs and their networks' steps"


def victim_key(scheme: Scheme, label: str = "victim") -> Key:
    """The victim's key for this report: made by the scheme, reproducible."""
    return scheme.keygen(seed=f"noiseveil security report {label} key".encode())


def measure(guess: np.ndarray, plain: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Scores against the plaintexts; with ``labels``, also the same-label control."""
    from noiseveil.perceptual import lpips_distance

    s = score(guess, plain)
    out = {
        "ssim": describe(s["ssim"]),
        "psnr_db": describe(s["psnr_db"]),
        "lpips_style": describe(lpips_distance(guess, plain)),
    }
    if labels is not None:
        out["control"] = same_label_control(guess, plain, labels)
    return out


def _encrypt(scheme: Scheme, images: np.ndarray, key: Key, batch: int = 64) -> list[Ciphertext]:
    batches = progress_bar(range(0, len(images), batch), desc=f"encrypt {len(images)} images", unit="batch")
    return [ct for i in batches for ct in scheme.encrypt(to_tensor(images[i : i + batch]), key)]


def brute_force(
    scheme: Scheme, cts: list[Ciphertext], plain: np.ndarray, key: Key, b: SecurityBudget
) -> dict:
    n = b.brute_force_images
    cts, plain = cts[:n], plain[:n]
    rng = np.random.default_rng(0)
    space = key.secret_bits or 0
    bits = sorted(rng.choice(space, size=min(b.one_bit_keys, space), replace=False).tolist()) if space else []
    sweeps = {
        "random keys": BruteForceAttack(scheme, n_keys=b.brute_force_keys),
        **({"one-bit keys": BruteForceAttack.one_bit_away(scheme, key, bits)} if bits else {}),
        "right key": BruteForceAttack(scheme, [key]),
    }
    per_key = {}
    for name, attack in sweeps.items():
        per_key[name] = [
            {k: v["mean"] for k, v in measure(guess, plain).items()} for guess in attack.sweep(cts)
        ]
    summary = {
        name: {metric: describe([row[metric] for row in rows]) for metric in rows[0]}
        for name, rows in per_key.items()
    }
    alphas = []
    wrong = BruteForceAttack(scheme, n_keys=1).guesses[0]
    # NES α needs keyed noise and a decoder to perturb (RIC's learned presets); a scheme without
    # them (the lossless preset: a wrong key opens nothing, its AEAD refuses) is out of its scope.
    nes_cts = cts[: b.nes_images] if isinstance(scheme, NoiseKeyedScheme) else []
    for i, ct in enumerate(nes_cts):
        x_q = to_tensor(ct.pixels[None])
        alphas.append(
            estimate_alpha(
                scheme,
                x_q,
                scheme.key_material(ct, key),
                scheme.key_material(ct, wrong),
                b.nes_samples,
                seed=i,
            )
        )
    return {
        "images": n,
        "key_space_bits": key.secret_bits,
        "one_bit_positions": bits,
        "per_key_means": per_key,
        "summary": summary,
        "nes_alpha_db": (
            {"per_image": alphas, **describe(alphas), "z": b.nes_samples, "sigma": 1.0} if alphas else None
        ),
    }


def attacker_split(n_train: int, b: SecurityBudget) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Training-split indices for the cloud's ciphertexts, the KPA pairs and the attacker's own
    images (ITN pairs, discriminator, label-only means); the test images are never among them.

    Disjoint when the split is large enough (CIFAR-10). A smaller one (LFW: 2,442 images) keeps
    the KPA pairs apart and gives the rest to the attacker's own images, which the cloud's
    ciphertexts then overlap: the cloud's discriminator has seen the plaintexts of some of its
    ciphertexts, an advantage to the attacker, recorded as ``roles_overlap``.
    """
    order = np.random.default_rng(1).permutation(n_train)
    c, k = b.cloud_ciphertexts, b.kpa_pairs
    disjoint = n_train - c - k >= b.itn_pairs // 2
    if disjoint:
        cloud_idx, kpa_idx, own_idx = order[:c], order[c : c + k], order[c + k :]
    else:
        kpa_idx, own_idx = order[:k], order[k:]
        cloud_idx = own_idx[:c]
    split = {
        "train_images": n_train,
        "kpa_pairs": len(kpa_idx),
        "cloud_ciphertexts": len(cloud_idx),
        "own_images": len(own_idx),
        "itn_pairs": min(b.itn_pairs, len(own_idx)),
        "roles_overlap": not disjoint,
    }
    return cloud_idx, kpa_idx, own_idx, split


def run_model(model_id: str, data: ImageDataset, b: SecurityBudget, figures: Path) -> dict[str, Any]:
    print(f"{model_id}: encrypting {b.test_images} test images, then the brute-force sweep ...", flush=True)
    scheme = load_scheme(model_id)
    if not scheme.keeps_plaintext_label:
        raise ZooError(f"{model_id}: the RIC security suite is for unmodified-classifier schemes")
    key, other_key = victim_key(scheme), victim_key(scheme, "other")
    idx = fixed_subset(len(data.x_test), b.test_images, seed=0)
    plain, cts = data.x_test[idx], _encrypt(scheme, data.x_test[idx], key)
    labels = predict(scheme.cloud_classifier(), to_tensor(pixels_of(cts))).numpy()
    cloud_idx, kpa_idx, own_idx, split = attacker_split(len(data.x_train), b)
    own = data.x_train[own_idx]
    stages = Stages(prefix=f"{model_id} ")
    out: dict[str, Any] = {
        "model": model_id,
        "dataset": data.name,
        "test_images": b.test_images,
        "split": split,
    }

    out["brute_force"] = stages.run("brute-force", brute_force, scheme, cts, plain, key, b)

    print(f"{model_id}: brute force done; encrypting {len(kpa_idx)} known-plaintext pairs ...", flush=True)
    kpa_cts = _encrypt(scheme, data.x_train[kpa_idx], key)
    kpa_targets = (scheme.decrypt(kpa_cts, key) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    attacks = {
        "label-only": LabelOnlyBaseline(scheme, own, data.y_train[own_idx]),
        "brute-force": BruteForceAttack(scheme, n_keys=1),
        "kpa": KnownPlaintextAttack(scheme, kpa_cts, kpa_targets, steps=b.network_steps),
        "itn": ITNAttack(scheme, own[: b.itn_pairs], steps=b.network_steps),
        "cloud": CloudAttack(
            scheme, _encrypt(scheme, data.x_train[cloud_idx], key), own, steps=b.network_steps
        ),
    }
    results, guesses = {}, {}
    for name, attack in attacks.items():
        report, guesses[name] = stages.run(name, lambda a=attack: (a.fit(), a(cts, labels)))
        results[name] = {"threat": attack.threat, "fit": report, **measure(guesses[name], plain, labels)}
        print(f"{model_id} {name}: SSIM {results[name]['ssim']['mean']:.4f}", flush=True)
    other_cts = _encrypt(scheme, plain, other_key)
    results["kpa (other key)"] = {
        "threat": "the KPA network above, on ciphertexts of another key",
        **measure(attacks["kpa"](other_cts, labels), plain, labels),
    }
    results["ciphertext itself"] = measure(pixels_of(cts), plain, labels)
    out["attacks"] = results
    out["seconds"] = stages.seconds
    names = ["label-only", "brute-force", "cloud", "kpa", "itn"]
    picture_grid(
        [plain[:8], pixels_of(cts)[:8], *(guesses[n][:8] for n in names)],
        ["plaintext", "ciphertext", *names],
        figures / f"attacks-{model_id}.png",
    )
    key_sweep_plot(out["brute_force"]["per_key_means"], figures / f"key-sweep-{model_id}.png")
    return out


def default_models() -> list[str]:
    """Every shipped model whose cloud runs the plaintext classifier and whose key is random
    bits. Trained keys (AVP's generators) cost minutes each, so their guessing attacks run in
    their own report (`noiseveil report avp`), on budgets sized for them."""
    # Models for photos of any size have no dataset to train the attack networks on; their
    # observer checks are measured by scripts/measure_photos.py.
    on_datasets = [m for m in shipped_schemes() if read_manifest()[m].get("dataset") != PHOTOS]
    schemes = {m: load_scheme(m) for m in on_datasets}
    return [m for m, s in schemes.items() if s.keeps_plaintext_label and s.key_type.secret_bits is not None]


def run(
    out_dir: Path = RESULTS_DIR / "security",
    models: list[str] | None = None,
    budget: SecurityBudget = SecurityBudget(),
) -> dict:
    """Runs the suite on ``models`` (default: every shipped RIC model), keeping the saved entries
    of the others; writes the JSON after each model so that a stopped run keeps what finished."""
    models = models or default_models()
    path = out_dir / "security-report.json"
    kept = json.loads(path.read_text())["models"] if path.exists() else {}
    result: dict[str, Any] = {}
    for model_id in models:
        entry = read_manifest()[model_id]
        data = load_dataset(entry["dataset"])
        prov = provenance([data.source_id], [model_id, entry["classifier_id"]])
        kept[model_id] = {
            **prov,
            "budget": asdict(budget),
            **run_model(model_id, data, budget, out_dir / "figures"),
        }
        entries = {m: kept[m] for m in sorted(kept)}
        data_ids = sorted({d for e in entries.values() for d in e["data"]})
        result = {**provenance(data_ids, list(entries)), "models": entries}
        write_result(path, result)
        (out_dir / "report.md").write_text(markdown(result))
    return result


def _split_line(split: dict[str, Any] | None) -> list[str]:
    if not split:
        return []
    overlap = (
        " The training split is too small for disjoint roles: the cloud's ciphertexts are made "
        "from images the attacker also owns (an advantage to the attacker)."
        if split["roles_overlap"]
        else " All roles are disjoint."
    )
    return [
        "",
        f"Training split of {split['train_images']} images: {split['kpa_pairs']} KPA pairs, "
        f"{split['cloud_ciphertexts']} cloud ciphertexts, {split['own_images']} attacker's own "
        f"images ({split['itn_pairs']} ITN pairs).{overlap}",
    ]


def _gain(a: dict[str, Any], metric: str, fmt: str) -> str:
    c = a.get("control")
    if c is None:
        return "-"
    if metric not in c:
        return "- (no two images share a label)"
    return f"{c[metric]['gain']:+{fmt}} ± {c[metric]['gain_stderr']:{fmt}} ({c['images']} images)"


def attack_table(attacks: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows: every attack's scores and its gain over a same-label image."""
    lines = [
        "| attack | what the attacker knows | SSIM mean | PSNR dB mean | LPIPS-style mean "
        "| SSIM gain over a same-label image | PSNR dB gain over a same-label image |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, a in attacks.items():
        lines.append(
            f"| {name} | {a.get('threat', '-')} | {a['ssim']['mean']:.4f} | {a['psnr_db']['mean']:.2f} | "
            f"{a['lpips_style']['mean']:.4f} | {_gain(a, 'ssim', '.4f')} | {_gain(a, 'psnr_db', '.2f')} |"
        )
    return lines


SAME_LABEL_CONTROL = (
    "A reconstruction reveals more than the label only if it beats the label-only baseline "
    "(the class-mean image of the cloud's label) on the same images. A second, stricter test "
    "controls for reconstructions that merely look like the domain: each reconstruction is "
    "scored against its own plaintext and against another test plaintext with the same "
    "label; the gain (own − other, paired per image, ± standard error) is the information "
    "about that image beyond its label, and 0 for an attack that reads nothing from the "
    "ciphertext."
)


def markdown(r: dict[str, Any]) -> str:
    from noiseveil.perceptual import LPIPS_LABEL

    lines = [
        "# RIC security: brute-force, cloud, known-plaintext and ITN attacks",
        "",
        "Each model's section names the command, commit, date, data and budget that made it. "
        f"LPIPS-style: {LPIPS_LABEL}.",
        "",
        SAME_LABEL_CONTROL,
    ]
    for model_id, m in r["models"].items():
        bf = m["brute_force"]
        lines += [
            "",
            f"## {model_id} ({m['test_images']} test images; times: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in m["seconds"].items())
            + ")",
            "",
            f"Generated by `{m['command']}` at commit `{m['git_commit']}` on {m['date']}; "
            f"data {', '.join(m['data'])}. Budget: "
            + ", ".join(f"{k} {v}" for k, v in m["budget"].items())
            + ".",
            *_split_line(m.get("split")),
            "",
            *attack_table(m["attacks"]),
            "",
            f"Brute force over {bf['images']} images (key space 2^{bf['key_space_bits']}): per-key mean PSNR",
            "",
            "| guesses | keys | PSNR dB mean | min | max | SSIM mean |",
            "|---|---|---|---|---|---|",
        ]
        for name, s in bf["summary"].items():
            lines.append(
                f"| {name} | {len(bf['per_key_means'][name])} | {s['psnr_db']['mean']:.2f} | "
                f"{s['psnr_db']['min']:.2f} | {s['psnr_db']['max']:.2f} | {s['ssim']['mean']:.4f} |"
            )
        beating = beating_baseline(m["attacks"])
        base = m["attacks"]["label-only"]
        guessed = ("random keys", "one-bit keys")
        wrong = max(bf["summary"][k]["psnr_db"]["max"] for k in guessed)
        n_wrong = sum(len(bf["per_key_means"][k]) for k in guessed)
        lines += [
            "",
            "**Attacks that beat the label-only baseline** (mean SSIM or mean PSNR): "
            + (", ".join(beating) if beating else "none")
            + ". Look at the picture grid before calling any of them a leak.",
            "",
            "**Attacks closer to their own plaintext than to another of the same label** (gain above "
            "3 standard errors): " + (", ".join(image_specific(m["attacks"])) or "none") + ".",
            "",
            f"**Key sensitivity.** The best of {n_wrong} wrong keys (random and one bit away) "
            f"decrypts to {wrong:.2f} dB mean PSNR, against "
            f"{bf['summary']['right key']['psnr_db']['mean']:.2f} dB for the right key and "
            f"{base['psnr_db']['mean']:.2f} dB for the label-only baseline.",
        ]
        a = bf["nes_alpha_db"]
        lines += [
            "",
            f"NES α of Theorem 6.1 (eq. 21-22, z = {a['z']}, σ = {a['sigma']}, "
            f"{len(a['per_image'])} images): mean {a['mean']:.2f} dB "
            f"(min {a['min']:.2f}, max {a['max']:.2f}); a heuristic scale, see "
            "`noiseveil/attacks/nes.py` for why it is not a proven bound."
            if a
            else "NES α: not applicable (lossless preset: no keyed noise or decoder to perturb; "
            "a wrong key's AEAD opens nothing, and the sweep above shows what skipping it gives).",
            "",
            f"![key sweep](figures/key-sweep-{model_id}.png)",
            "",
            f"![reconstructions](figures/attacks-{model_id}.png)",
        ]
    return "\n".join(lines) + "\n"


def leaks(results: Results) -> str:
    """Each RIC model's verdict: which attacks beat the label-only baseline, which are image-specific."""
    r = results.first()
    if r is None:
        return ""
    settings = [(f"`{model_id}`", m) for model_id, m in r["models"].items()]
    return verdict_table(settings)

"""`noiseveil report avp`: the AVP paper's tables and figures on our data, plus its security.

Su et al., *Visual privacy protection based on Type-I adversarial attack*. On the bundle's
64x64 LFW faces (the shipped face model, ``avp-lfw``) and CIFAR-10 (``avp-cifar10``):

- Table 1: SSIM_e, SSIM_d and the cosine similarity of face embeddings;
- Table 2: face identification with the paper's probe/gallery protocol, adapted to the
  bundle's people: original, AVP-ONE (the probe's enrolled image encrypted) and AVP-ALL (the
  whole gallery encrypted);
- Tables 4-5: CIFAR-10 accuracy on plain and encrypted images, SSIM_e and SSIM_d;
- Fig. 7: the variance-consistency loss L_v against the distance loss L_d (its ablation);
- Fig. 9: correlation of adjacent pixels, plain and encrypted;
- security (§4.3): keys from different initialisations and the cross-decryption matrix; then
  the attacks on the victim's key (key 1), each against the label-only baseline and the
  same-label control of the RIC suite: another key model decrypting, the paper's attack model
  (the known-plaintext attack on key 1's pairs, tested on keys 1 and 2), the ITN attack on
  pairs of the attacker's own key models, and the reconstruction from many ciphertexts that
  share one key model (:mod:`noiseveil.attacks.shared_key`, after Jang et al. 2024).

Every stage is kept in ``runs/avp-report`` as it finishes, so a stopped run resumes;
``--stages`` re-measures some stages and keeps the others from the saved JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from noiseveil.app.figures import picture_grid
from noiseveil.app.provenance import RESULTS_DIR, provenance, stages_to_run, write_result
from noiseveil.app.reports.markdown import Results, verdict_table
from noiseveil.app.reports.security import SAME_LABEL_CONTROL, attack_table, measure
from noiseveil.attacks import (
    BruteForceAttack,
    ITNAttack,
    KnownPlaintextAttack,
    LabelOnlyBaseline,
    beating_baseline,
    image_specific,
)
from noiseveil.attacks.shared_key import SharedKeyReconstructionAttack
from noiseveil.classifiers.training import predict
from noiseveil.crypto.keys import Key
from noiseveil.data import ImageDataset, fixed_subset, load_dataset, to_tensor, to_uint8
from noiseveil.io.png import ciphertext_from_bytes, ciphertext_to_bytes
from noiseveil.metrics import describe, psnr, ssim
from noiseveil.schemes.avp import AVPScheme, GeneratorKey
from noiseveil.schemes.base import Ciphertext, Encrypted, EncryptionError
from noiseveil.timing import Stages
from noiseveil.zoo import load_scheme

FACES, OBJECTS = "avp-lfw", "avp-cifar10"


@dataclass(frozen=True)
class AVPReportBudget:
    """How much each stage may use; the defaults are what results/avp was made with."""

    images: int = 64  # Table 1 and Fig. 9 (LFW test images)
    cifar_images: int = 200  # Tables 4-5
    probe_people: int = 6  # Table 2: people with the most test images
    probe_images: int = 8  # ... at most this many images each
    distractors: int = 100  # ... other people's training images in the gallery
    keys: int = 4  # §4.3: key models from different initialisations (the first is the demo key)
    key_steps: int | None = None  # their training steps (default: the model's own)
    matrix_images: int = 8  # images per cell of the cross-decryption matrix
    attack_images: int = 64  # LFW test images of key 1 that every attack reconstructs
    attack_pairs: int = 256  # the attack model's training pairs (key 1)
    attack_steps: int = 600  # training steps of the inverse networks (attack model, ITN)
    itn_pairs: int = 192  # own images the ITN attacker encrypts with their own keys (keys 2, 3, ...)
    shared_key_steps: int = 400  # the shared-key attack's surrogate training steps
    ablation_images: int = 8


BUDGETS = {
    "ci": AVPReportBudget(
        images=2,
        cifar_images=4,
        probe_people=2,
        probe_images=2,
        distractors=4,
        keys=2,
        key_steps=200,
        matrix_images=2,
        attack_images=4,
        attack_pairs=8,
        attack_steps=2,
        itn_pairs=8,
        shared_key_steps=2,
        ablation_images=2,
    ),
    "default": AVPReportBudget(),
    "paper": AVPReportBudget(
        images=256,
        cifar_images=1000,
        probe_people=10,
        distractors=1000,
        attack_images=256,
        attack_pairs=1000,
        attack_steps=2000,
        itn_pairs=1000,
        shared_key_steps=1500,
    ),
}
SCALES = "test images of every table, the keys and their steps, the attacks' pairs and steps"


# The paper's figures, for the side-by-side rows (its Tables 1, 2, 4 and 5; four face models
# at 112x112 with an 11 M-parameter key, ResNet50 and VGG19 on CIFAR-10).
PAPER_TABLE1 = {  # SSIM_e, SSIM_d, cos-sim
    "AdaFace": (0.028, 0.893, 0.997),
    "ArcFace": (0.030, 0.903, 0.994),
    "CosFace": (0.028, 0.899, 0.998),
    "SphereFace": (0.029, 0.906, 0.996),
}
PAPER_TABLE2 = {  # Original, AVP-ONE, AVP-ALL (%)
    "AdaFace": (98.6, 98.6, 98.6),
    "ArcFace": (96.5, 96.5, 96.5),
    "CosFace": (89.4, 89.2, 89.3),
    "SphereFace": (80.3, 80.0, 80.6),
}
PAPER_TABLE45 = {  # accuracy original, encrypted (%), SSIM_e, SSIM_d
    "VGG19": (93.95, 93.95, 0.171, 0.900),
    "ResNet50": (95.53, 95.28, 0.198, 0.923),
}


@dataclass
class KeptEncryptions(AVPScheme):
    """AVP whose every encryption (a batch, under one key) the report keeps in ``folder`` as the
    ciphertexts' PNG bytes: at K = 800 the security stage encrypts for hours, and a stopped run
    reuses what it made. The name fixes the images, the key (which binds its weights) and the
    settings; the algorithm's code is not in it (delete the folder after changing it)."""

    folder: Path | None = None

    @classmethod
    def of(cls, scheme: AVPScheme, folder: Path) -> KeptEncryptions:
        return cls(**{f.name: getattr(scheme, f.name) for f in fields(scheme)}, folder=folder)

    def encrypt_each(self, images: torch.Tensor, key: Key) -> list[Ciphertext | EncryptionError]:
        if self.folder is None:
            return super().encrypt_each(images, key)
        # "each": the files keep refusals too (a folder of the earlier format is not read back)
        settings = json.dumps(["each", asdict(self.attack), self.promised_psnr, self.max_tries, key.key_id])
        digest = hashlib.sha256(settings.encode() + images.numpy().tobytes()).hexdigest()[:20]
        path = self.folder / f"{self.model_id}-{digest}.npz"
        if path.exists():  # each image: its ciphertext's PNG bytes, or why it has none
            with np.load(path) as saved:
                return [
                    ciphertext_from_bytes(saved[f"ct_{i}"].tobytes())
                    if f"ct_{i}" in saved.files
                    else EncryptionError(saved[f"refused_{i}"].tobytes().decode())
                    for i in range(len(images))
                ]
        results = super().encrypt_each(images, key)
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{_kept_name(i, r): _kept_bytes(r) for i, r in enumerate(results)})
        os.replace(tmp, path)
        return results


def _kept_name(i: int, result: Ciphertext | EncryptionError) -> str:
    return f"refused_{i}" if isinstance(result, EncryptionError) else f"ct_{i}"


def _kept_bytes(result: Ciphertext | EncryptionError) -> np.ndarray:
    data = str(result).encode() if isinstance(result, EncryptionError) else ciphertext_to_bytes(result)
    return np.frombuffer(data, np.uint8)


STAGES = ("table 1 and fig. 9", "table 2", "tables 4-5", "fig. 7", "security")


def _encrypt(scheme: AVPScheme, images: np.ndarray, key: GeneratorKey, batch: int = 16) -> Encrypted:
    """The images' ciphertexts, as a user gets them (self-checked); a refused image is left out
    and counted, so one refusal does not stop an hour of measuring."""
    from noiseveil.progress import heartbeat, progress_bar

    what = f"encrypt {len(images)}"
    with heartbeat(what, every=30):  # a batch at K = 800 takes minutes: not silent meanwhile
        batches = progress_bar(range(0, len(images), batch), desc=what, unit="batch")
        parts = [scheme.encrypt_kept(to_tensor(images[i : i + batch]), key, offset=i) for i in batches]
    return sum(parts[1:], parts[0])


def _refused(*batches: Encrypted) -> int:
    return sum(len(b.refused) for b in batches)


def _pixels(cts: list[Ciphertext] | Encrypted) -> np.ndarray:
    cts = cts.ciphertexts if isinstance(cts, Encrypted) else cts
    return np.stack([ct.pixels for ct in cts])


def _decrypt(scheme: AVPScheme, cts: list[Ciphertext], key: GeneratorKey) -> np.ndarray:
    """The key holder's recovery: verified (the tag), then decrypted."""
    return to_uint8(scheme.decrypt(cts, key))


def _embed(scheme: AVPScheme, images: np.ndarray) -> torch.Tensor:
    classifier = scheme.cloud_classifier()
    with torch.no_grad():
        out = torch.cat(
            [classifier.embed(to_tensor(images[i : i + 128])) for i in range(0, len(images), 128)]
        )
    return torch.nn.functional.normalize(out, dim=1)


def quality(scheme: AVPScheme, plain: np.ndarray, cts: list[Ciphertext], key: GeneratorKey) -> dict[str, Any]:
    cipher, recovered = _pixels(cts), _decrypt(scheme, cts, key)
    row = {
        "images": len(plain),
        "ssim_e": describe(ssim(cipher, plain)),
        "ssim_d": describe(ssim(recovered, plain)),
        "psnr_d_db": describe(psnr(recovered, plain)),
    }
    if scheme.attack.task == "features":
        cos = (_embed(scheme, cipher) * _embed(scheme, plain)).sum(1).numpy()
        row["cosine_similarity"] = describe(cos)
    return row


def table1(scheme: AVPScheme, data: ImageDataset, key: GeneratorKey, b: AVPReportBudget, figures: Path):
    idx = fixed_subset(len(data.x_test), b.images, seed=0)
    encrypted = _encrypt(scheme, data.x_test[idx], key)
    plain, cts = data.x_test[idx][encrypted.kept], encrypted.ciphertexts
    recovered = _decrypt(scheme, cts, key)
    picture_grid(
        [plain[:8], _pixels(cts)[:8], recovered[:8]], ["x", "x' (AVP)", "G(x')"], figures / "avp-faces.png"
    )
    return {
        **quality(scheme, plain, cts, key),
        "refused": _refused(encrypted),
        "correlation": adjacent_correlation(plain, _pixels(cts)),
    }


def adjacent_correlation(plain: np.ndarray, cipher: np.ndarray, pairs: int = 3000) -> dict[str, Any]:
    """Fig. 9: correlation coefficients of 3000 random pairs of adjacent pixels (horizontal,
    vertical, diagonal), over all images and channels, plain and encrypted."""
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for name, images in (("plain", plain), ("encrypted", cipher)):
        n, h, w, c = images.shape
        row = {}
        for direction, (dy, dx) in {"horizontal": (0, 1), "vertical": (1, 0), "diagonal": (1, 1)}.items():
            i, y, x, ch = (
                rng.integers(n, size=pairs),
                rng.integers(h - dy, size=pairs),
                rng.integers(w - dx, size=pairs),
                rng.integers(c, size=pairs),
            )
            a = images[i, y, x, ch].astype(np.float64)
            b = images[i, y + dy, x + dx, ch].astype(np.float64)
            row[direction] = float(np.corrcoef(a, b)[0, 1])
        out[name] = row
    return out


def identification(
    scheme: AVPScheme, data: ImageDataset, key: GeneratorKey, b: AVPReportBudget
) -> dict[str, Any]:
    """Table 2, the paper's protocol on the bundle's LFW people: each probe person's test
    images take turns as the one enrolled in the gallery (beside ``distractors`` training
    images of other people); the person's remaining images are identified by the nearest
    gallery embedding (cosine). Original, AVP-ONE (the enrolled image encrypted) and AVP-ALL
    (every gallery image encrypted)."""
    counts = np.bincount(data.y_test, minlength=data.num_classes)
    people = np.argsort(-counts, kind="stable")[: b.probe_people]
    probe_idx = np.concatenate([np.flatnonzero(data.y_test == p)[: b.probe_images] for p in people])
    others = np.flatnonzero(~np.isin(data.y_train, people))
    distractor_idx = others[fixed_subset(len(others), b.distractors, seed=1)]
    # every setting on the same images: those whose encryption the self-check passed
    enc_probes = _encrypt(scheme, data.x_test[probe_idx], key)
    enc_distractors = _encrypt(scheme, data.x_train[distractor_idx], key)
    probe_idx, distractor_idx = probe_idx[enc_probes.kept], distractor_idx[enc_distractors.kept]
    probes, probe_people = data.x_test[probe_idx], data.y_test[probe_idx]
    distractors = data.x_train[distractor_idx]
    plain_emb = {"probe": _embed(scheme, probes), "distractor": _embed(scheme, distractors)}
    cipher_emb = {
        "probe": _embed(scheme, _pixels(enc_probes)),
        "distractor": _embed(scheme, _pixels(enc_distractors)),
    }
    settings = {
        "original": (plain_emb["probe"], plain_emb["distractor"]),
        "AVP-ONE": (cipher_emb["probe"], plain_emb["distractor"]),
        "AVP-ALL": (cipher_emb["probe"], cipher_emb["distractor"]),
    }
    result: dict[str, Any] = {
        "people": len(people),
        "probe_images": len(probe_idx),
        "distractors": len(distractor_idx),
        "refused": _refused(enc_probes, enc_distractors),
    }
    for name, (enrolled_emb, distractor_emb) in settings.items():
        right = total = 0
        for i in range(len(probe_idx)):  # image i is enrolled; its person's others are queries
            gallery = torch.cat([enrolled_emb[i : i + 1], distractor_emb])
            queries = [j for j in range(len(probe_idx)) if j != i and probe_people[j] == probe_people[i]]
            nearest = (plain_emb["probe"][queries] @ gallery.T).argmax(1)
            right += int((nearest == 0).sum())
            total += len(queries)
        result[name] = right / total
    return result


def classification(
    scheme: AVPScheme, data: ImageDataset, key: GeneratorKey, b: AVPReportBudget, figures: Path
):
    idx = fixed_subset(len(data.x_test), b.cifar_images, seed=0)
    encrypted = _encrypt(scheme, data.x_test[idx], key, batch=50)
    plain, labels, cts = (
        data.x_test[idx][encrypted.kept],
        data.y_test[idx][encrypted.kept],
        encrypted.ciphertexts,
    )
    classifier = scheme.cloud_classifier()
    with torch.no_grad():
        plain_acc = float((predict(classifier, to_tensor(plain)).numpy() == labels).mean())
        cipher_acc = float((predict(classifier, to_tensor(_pixels(cts))).numpy() == labels).mean())
    recovered = _decrypt(scheme, cts, key)
    picture_grid(
        [plain[:8], _pixels(cts)[:8], recovered[:8]], ["x", "x' (AVP)", "G(x')"], figures / "avp-cifar10.png"
    )
    return {
        "accuracy_plain": plain_acc,
        "accuracy_encrypted": cipher_acc,
        "refused": _refused(encrypted),
        **quality(scheme, plain, cts, key),
    }


def ablation(scheme: AVPScheme, data: ImageDataset, key: GeneratorKey, b: AVPReportBudget, figures: Path):
    """Fig. 7: L_v (the paper's) against L_d (maximise ‖x − x'‖², eq. 6) at several weights,
    each with the card's other settings."""
    plain = data.x_test[fixed_subset(len(data.x_test), b.ablation_images, seed=2)]
    rows, grid, titles = [], [plain], ["x"]
    shipped = "L_d" if scheme.attack.visual_loss == "distance" else "L_v"
    variants = {
        f"{shipped}, λ = {scheme.attack.lam:g} (shipped)": {},
        "L_v, λ = 1e-2": {"visual_loss": "variance", "lam": 1e-2},
        "L_v, λ = 1e-1": {"visual_loss": "variance", "lam": 1e-1},
        "L_d, λ = 1e-3": {"visual_loss": "distance", "lam": 1e-3},
        "L_d, λ = 1e-2": {"visual_loss": "distance", "lam": 1e-2},
        "neither (λ = 0)": {"lam": 0.0},
    }
    for name, change in variants.items():
        variant = replace(scheme, attack=replace(scheme.attack, **change))
        cts = variant.encrypt_unchecked(to_tensor(plain), key)  # the measurement, not a user's file
        rows.append({"variant": name, **quality(variant, plain, cts, key)})
        grid += [_pixels(cts), _decrypt(variant, cts, key)]
        titles += [f"x' {name}", "G(x')"]
    picture_grid(grid, titles, figures / "avp-ablation.png")
    return rows


def security(scheme: AVPScheme, data: ImageDataset, b: AVPReportBudget, runs: Path, figures: Path):
    """§4.3: keys from different initialisations and the cross-decryption matrix, then the
    attacks on key 1 (see :func:`attacks`)."""
    keys = [scheme.demo_key()] + [
        _stored_key(scheme, runs / f"key-{i}.key", f"noiseveil avp report key {i}".encode(), b.key_steps)
        for i in range(1, b.keys)
    ]
    plain = data.x_test[fixed_subset(len(data.x_test), b.matrix_images, seed=3)]
    encrypted = [_encrypt(scheme, plain, k) for k in keys]
    # the images every key encrypted (a refused one has no ciphertext under that key)
    common = sorted(set.intersection(*(set(e.kept) for e in encrypted)))
    per_key = [[e.ciphertexts[e.kept.index(i)] for i in common] for e in encrypted]
    plain = plain[common]
    # Another key's ciphertexts fail the tag: what a key yields on them is the attacker's view.
    every_key = BruteForceAttack(scheme, keys)
    decrypted = [every_key.sweep(cts) for cts in per_key]  # [encrypting key][decrypting key]
    matrix = [
        [
            {"ssim": float(ssim(images, plain).mean()), "psnr_db": float(psnr(images, plain).mean())}
            for images in row
        ]
        for row in decrypted
    ]
    picture_grid(
        [plain, *decrypted[0]],
        ["x", *(f"key 1 ciphertext, decrypted with key {j + 1}" for j in range(len(keys)))],
        figures / "avp-cross-decryption.png",
    )
    return {
        "keys": [{"key_id": k.key_id, **k.info} for k in keys],
        "cross_decryption": matrix,
        "matrix_images": len(plain),
        "matrix_refused": _refused(*encrypted),
        **attacks(scheme, data, keys[0], keys[1:], b, figures),
    }


def attacks(
    scheme: AVPScheme,
    data: ImageDataset,
    victim: GeneratorKey,
    own_keys: list[GeneratorKey],
    b: AVPReportBudget,
    figures: Path,
) -> dict[str, Any]:
    """The attacks on ``victim``'s ciphertexts of ``b.attack_images`` test faces. The attacker's
    images of the domain (label-only means, ITN pairs, the shared-key attack's realism and
    autoencoder terms) are training images apart from the known pairs; ``own_keys`` are key
    models the attacker trained with the public recipe."""
    if not own_keys:
        raise ValueError("the AVP attacks need at least one key besides the victim's (budget keys >= 2)")
    plain = data.x_test[fixed_subset(len(data.x_test), b.attack_images, seed=5)]
    victims = _encrypt(scheme, plain, victim)  # what the cloud stores: refused images never reach it
    plain, cts = plain[victims.kept], victims.ciphertexts
    labels = predict(scheme.cloud_classifier(), to_tensor(_pixels(cts))).numpy()
    order = np.random.default_rng(4).permutation(len(data.x_train))
    pair_idx, own_idx = order[: b.attack_pairs], order[b.attack_pairs :]
    known = _encrypt(scheme, data.x_train[pair_idx], victim)
    pair_idx, pairs = pair_idx[known.kept], known.ciphertexts
    own = data.x_train[own_idx]
    task = scheme.attack.task
    per_own_key = -(-b.itn_pairs // len(own_keys))
    stored = [cts, [*cts, *pairs]]  # the cloud's ciphertexts of key 1: the test faces, then more
    suite = {
        "label-only": LabelOnlyBaseline(scheme, own, data.y_train[own_idx]),
        "another key": BruteForceAttack(scheme, own_keys[:1]),
        "kpa": KnownPlaintextAttack(scheme, pairs, data.x_train[pair_idx], steps=b.attack_steps),
        "itn": ITNAttack(
            scheme, own[: b.itn_pairs], images_per_key=per_own_key, keys=own_keys, steps=b.attack_steps
        ),
        **{
            f"shared-key, {len(shared)} ciphertexts": SharedKeyReconstructionAttack(
                scheme, shared, own, task, start_key=own_keys[0], steps=b.shared_key_steps
            )
            for shared in stored
        },
        f"shared-key, {len(cts)} ciphertexts, with the adversarial loss": SharedKeyReconstructionAttack(
            scheme, cts, own, task, start_key=own_keys[0], steps=b.shared_key_steps, adversarial_weight=0.05
        ),
    }
    results, guesses = {}, {}
    for name, attack in suite.items():
        print(f"attack {name} ...", flush=True)
        fit = attack.fit()
        guesses[name] = attack(cts, labels)
        results[name] = {"threat": attack.threat, "fit": fit, **measure(guesses[name], plain, labels)}
        print(f"attack {name}: SSIM {results[name]['ssim']['mean']:.4f}", flush=True)
    other = _encrypt(scheme, plain, own_keys[0])
    results["kpa on another key's ciphertexts"] = {
        "threat": "the attack model above (key 1's pairs) on ciphertexts of key 2 (§4.3, Fig. 6)",
        **measure(suite["kpa"](other.ciphertexts, labels[other.kept]), plain[other.kept], labels[other.kept]),
    }
    results["ciphertext itself"] = measure(_pixels(cts), plain, labels)
    names = list(suite)
    short = [n.replace(" ciphertexts", "").replace(", with the adversarial loss", " + adv.") for n in names]
    picture_grid(
        [plain[:8], _pixels(cts)[:8], *(guesses[n][:8] for n in names)],
        ["x", "x' (key 1)", *short],  # row titles short enough not to overlap
        figures / "avp-attacks.png",
    )
    return {
        "attack_images": len(plain),
        "known_pairs": len(pair_idx),
        "refused": _refused(victims, known, other),
        "attacks": results,
        "beating_label_only": beating_baseline(results),
        "image_specific": image_specific(results),
    }


def _stored_key(scheme: AVPScheme, path: Path, seed: bytes, steps: int | None) -> GeneratorKey:
    """A report key, trained once and kept in ``runs`` so that a resumed run reuses it."""
    from noiseveil.crypto.keys import load_key

    if path.exists():
        return load_key(path)  # type: ignore[return-value]
    path.parent.mkdir(parents=True, exist_ok=True)
    key = scheme.keygen(seed, progress=True, checkpoint=path.with_suffix(".ckpt"), budget=steps)
    key.save(path)
    path.with_suffix(".ckpt").unlink(missing_ok=True)
    return key  # type: ignore[return-value]


RESULT_KEYS = dict(zip(STAGES, ("table1", "table2", "table4_5", "ablation", "security"), strict=True))


def run(
    out_dir: Path = RESULTS_DIR / "avp",
    budget: AVPReportBudget = AVPReportBudget(),
    runs: Path = Path("runs") / "avp-report",
    only_stages: list[str] | None = None,
) -> dict[str, Any]:
    """Every table and figure into ``out_dir``; finished stages and the report's own keys
    (secret material, never results) are kept in ``runs`` so a stopped run resumes.
    ``only_stages`` (some of :data:`STAGES`) re-measures those and keeps the rest as saved."""
    wanted, kept, kept_seconds = stages_to_run(out_dir / "avp-report.json", only_stages, STAGES)
    print("report avp: loading LFW, CIFAR-10 and the AVP models ...", flush=True)
    faces, objects = (
        KeptEncryptions.of(load_scheme(m, of_class=AVPScheme), runs / "ciphertexts") for m in (FACES, OBJECTS)
    )
    lfw, cifar = load_dataset("lfw"), load_dataset("cifar10")
    prov = provenance(
        [lfw.source_id, cifar.source_id], [FACES, OBJECTS, faces.classifier_id, objects.classifier_id]
    )
    figures = out_dir / "figures"
    stages = Stages(cache=runs / "stages.json", identity={"git_commit": prov["git_commit"], **asdict(budget)})
    stages.seconds.update(kept_seconds)
    face_key, object_key = faces.demo_key(), objects.demo_key()
    result: dict[str, Any] = kept or {**prov, "budget": asdict(budget), "models": [FACES, OBJECTS]}
    if only_stages:
        result["stage_provenance"].update({stage: {**prov, "budget": asdict(budget)} for stage in wanted})
    work = {
        "table 1 and fig. 9": lambda: table1(faces, lfw, face_key, budget, figures),
        "table 2": lambda: identification(faces, lfw, face_key, budget),
        "tables 4-5": lambda: classification(objects, cifar, object_key, budget, figures),
        "fig. 7": lambda: ablation(faces, lfw, face_key, budget, figures),
        "security": lambda: security(faces, lfw, budget, runs, figures),
    }
    for stage in wanted:
        result[RESULT_KEYS[stage]] = stages.run(stage, work[stage])
    result["seconds"] = stages.seconds
    result["settings"] = {m: s.payload() for m, s in ((FACES, faces), (OBJECTS, objects))}
    for settings in result["settings"].values():
        settings.pop("demo_key")
    write_result(out_dir / "avp-report.json", result)
    (out_dir / "report.md").write_text(markdown(result))
    return result


def _mean(d: dict[str, Any]) -> str:
    return f"{d['mean']:.4f}"


def _restaged(r: dict[str, Any]) -> list[str]:
    """The stages measured again since (``--stages``), each by its own command and commit."""
    again = r.get("stage_provenance", {})
    if not again:
        return []
    runs: dict[tuple[str, str, str], list[str]] = {}  # the stages one run measured, together
    for stage, p in again.items():
        runs.setdefault((p["command"], p["git_commit"], p["date"]), []).append(stage)
    said = "; ".join(
        f"{', '.join(stages)} by `{command}` at commit `{commit}` on {date}"
        for (command, commit, date), stages in runs.items()
    )
    return [f"Measured again since: {said}.", ""]


def _refusals(stage: Mapping[str, Any], key: str = "refused") -> list[str]:
    """A line saying how many images the self-check refused (left out of the figures above),
    where a stage measured it and some were."""
    n = stage.get(key, 0)
    if not n:
        return []
    return [
        f"The self-check refused {n} image{'s' if n > 1 else ''} (no ciphertext after its retry: "
        "left out above, as a user gets none for them).",
        "",
    ]


def markdown(r: dict[str, Any]) -> str:
    t1, t2, t45 = r["table1"], r["table2"], r["table4_5"]
    sec = r["security"]
    lines = [
        "# AVP (Type-I adversarial visual privacy) on our data",
        "",
        f"Generated by `{r['command']}` at commit `{r['git_commit']}` on {r['date']}; data "
        f"{', '.join(r['data'])}; models {', '.join(r['models'])}. Budget: "
        + ", ".join(f"{k} {v}" for k, v in r["budget"].items())
        + ". Times: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in r["seconds"].items())
        + ".",
        "",
        *_restaged(r),
        "## Table 1: LFW (64x64, the shipped face model's embedding)",
        "",
        "| | images | SSIM_e | SSIM_d | PSNR_d dB | cos-sim |",
        "|---|---|---|---|---|---|",
        f"| ours | {t1['images']} | {_mean(t1['ssim_e'])} | {_mean(t1['ssim_d'])} | "
        f"{t1['psnr_d_db']['mean']:.2f} | {_mean(t1['cosine_similarity'])} |",
        *(f"| paper, {m} | - | {e:.3f} | {d:.3f} | - | {c:.3f} |" for m, (e, d, c) in PAPER_TABLE1.items()),
        "",
        *_refusals(t1),
        "![faces](figures/avp-faces.png)",
        "",
        f"## Table 2: identification ({t2['people']} people, {t2['probe_images']} probe images, "
        f"{t2['distractors']} distractors)",
        "",
        "| | Original | AVP-ONE | AVP-ALL |",
        "|---|---|---|---|",
        f"| ours | {100 * t2['original']:.1f} % | {100 * t2['AVP-ONE']:.1f} % | "
        f"{100 * t2['AVP-ALL']:.1f} % |",
        *(f"| paper, {m} | {o} % | {one} % | {a} % |" for m, (o, one, a) in PAPER_TABLE2.items()),
        "",
        *_refusals(t2),
        f"## Tables 4-5: CIFAR-10 ({t45['images']} test images, the shipped ResNet-10)",
        "",
        "| | accuracy plain | accuracy encrypted | SSIM_e | SSIM_d | PSNR_d dB |",
        "|---|---|---|---|---|---|",
        f"| ours | {100 * t45['accuracy_plain']:.1f} % | {100 * t45['accuracy_encrypted']:.1f} % | "
        f"{_mean(t45['ssim_e'])} | {_mean(t45['ssim_d'])} | {t45['psnr_d_db']['mean']:.2f} |",
        *(
            f"| paper, {m} | {o:.2f} % | {e:.2f} % | {se:.3f} | {sd:.3f} | - |"
            for m, (o, e, se, sd) in PAPER_TABLE45.items()
        ),
        "",
        *_refusals(t45),
        "![cifar](figures/avp-cifar10.png)",
        "",
        "## Fig. 7: L_v against L_d",
        "",
        "| variant | SSIM_e | SSIM_d | PSNR_d dB |",
        "|---|---|---|---|",
        *(
            f"| {row['variant']} | {_mean(row['ssim_e'])} | {_mean(row['ssim_d'])} | "
            f"{row['psnr_d_db']['mean']:.2f} |"
            for row in r["ablation"]
        ),
        "",
        "![ablation](figures/avp-ablation.png)",
        "",
        "## Fig. 9: correlation of adjacent pixels",
        "",
        "| images | horizontal | vertical | diagonal |",
        "|---|---|---|---|",
        *(
            f"| {name} | {c['horizontal']:.4f} | {c['vertical']:.4f} | {c['diagonal']:.4f} |"
            for name, c in t1["correlation"].items()
        ),
        "",
        f"## Security: {len(sec['keys'])} keys from different initialisations",
        "",
        "Cross-decryption (rows: the key that encrypted; columns: the key that decrypted), SSIM / PSNR dB:",
        "",
        "| | " + " | ".join(f"key {j + 1}" for j in range(len(sec["keys"]))) + " |",
        "|---" * (len(sec["keys"]) + 1) + "|",
        *(
            f"| key {i + 1} | " + " | ".join(f"{c['ssim']:.3f} / {c['psnr_db']:.2f}" for c in row) + " |"
            for i, row in enumerate(sec["cross_decryption"])
        ),
        "",
        *_refusals(sec, "matrix_refused"),
        "![cross](figures/avp-cross-decryption.png)",
        "",
        f"## Attacks on key 1 ({sec['attack_images']} LFW test faces)",
        "",
        SAME_LABEL_CONTROL,
        "",
        f"Keys 2 to {len(sec['keys'])} are the attacker's own key models (the public recipe, their "
        'own initialisations): "another key" decrypts with key 2, the ITN attack trains on pairs '
        f"made with all of them; the attack model is the known-plaintext attack on "
        f"{sec['known_pairs']} pairs of key 1 (§4.3, Fig. 6); the shared-key attack trains a "
        "surrogate key on key 1's stored ciphertexts alone, starting from key 2.",
        "",
        *attack_table(sec["attacks"]),
        "",
        *_refusals(sec),
        "**Attacks that beat the label-only baseline** (mean SSIM or mean PSNR): "
        + ("; ".join(sec["beating_label_only"]) or "none")
        + ".",
        "",
        "**Attacks closer to their own plaintext than to another of the same label** (gain above "
        "3 standard errors): " + ("; ".join(sec["image_specific"]) or "none") + ".",
        "",
        "![attacks](figures/avp-attacks.png)",
        "",
    ]
    return "\n".join(lines)


def leaks(results: Results) -> str:
    """The attacks on key 1's face ciphertexts: the verdicts the report's security stage drew."""
    r = results.first()
    if r is None or "security" not in r:
        return ""
    sec = r["security"]
    # the stage may predate the card's current settings: say when and at what commit it ran
    when = r.get("stage_provenance", {}).get("security", r)
    measured = f"measured {when['date'][:10]} at commit `{when['git_commit'][:8]}`"
    return verdict_table([(f"`avp-lfw`, key 1, {sec['attack_images']} test faces ({measured})", sec)])

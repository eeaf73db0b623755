"""`noiseveil demo` and `noiseveil evaluate`: shipped models on real test images (or a folder of
photos), through the real pipeline, measured."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np

from noiseveil.app.exit_codes import EXIT_FAILED_FILES, EXIT_OK
from noiseveil.app.services import (
    cloud_model,
    finish,
    format_table,
)
from noiseveil.crypto.keys import Key
from noiseveil.data import PHOTOS, load_dataset, read_image
from noiseveil.pipeline import (
    classify_files,
    decrypt_files,
    encrypt_files,
    plan,
)
from noiseveil.progress import heartbeat
from noiseveil.schemes.base import Scheme
from noiseveil.zoo import (
    ZooError,
    load_scheme,
    read_manifest,
    shipped_schemes,
)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from noiseveil.app.provenance import provenance, write_result
    from noiseveil.evaluation import evaluate_scheme

    print(f"evaluate: loading {args.model} and its test data ...", file=sys.stderr, flush=True)
    scheme = load_scheme(args.model)
    entry = read_manifest()[args.model]
    dataset = args.dataset or entry["dataset"]
    if args.photos is not None or dataset == PHOTOS:
        return evaluate_on_photos(args, scheme, entry)
    data = load_dataset(dataset)
    scheme.check_shape(data.image_shape, f"a {dataset} test image")
    ev, idx = evaluate_scheme(scheme, data, args.images, progress=not args.quiet)
    summary = ev.summary()
    # Default: results/ under the folder the command runs in (the checkout's, when run there).
    out = args.out or Path("results") / "evaluate" / f"{args.model}-{dataset}.json"
    result = {
        **provenance([data.source_id], [args.model, entry["classifier_id"]]),
        "scheme_model": args.model,
        "dataset": dataset,
        "subset": f"fixed_subset({len(data.x_test)}, {args.images}, seed=0) of the test split",
        **({"nae": scheme.nae_settings} if scheme.nae_settings is not None else {}),
        **summary,
    }
    write_result(out, result)
    print(format_table([evaluation_row(args.model, dataset, summary, scheme.keeps_plaintext_label)]))
    print(f"wrote {out}")
    return EXIT_OK


def evaluate_on_photos(args: argparse.Namespace, scheme: Scheme, entry: dict) -> int:
    """``evaluate`` on photos of any sizes (``--photos DIR``, or the sample photos), one at a time."""
    from noiseveil.app.provenance import provenance, write_result
    from noiseveil.data import load_photos
    from noiseveil.evaluation import evaluate_photos

    photos = load_photos(args.photos)[: args.images]
    for _, image in photos:
        scheme.check_shape(image.shape, "a photo")
    result = evaluate_photos(scheme, photos, progress=not args.quiet)
    source = str(args.photos) if args.photos is not None else "sample photos (scikit-image, matplotlib)"
    out = args.out or Path("results") / "evaluate" / f"{args.model}-photos.json"
    write_result(
        out,
        {
            **provenance([source], [args.model, entry["classifier_id"]]),
            "scheme_model": args.model,
            "photos": source,
            **result,
        },
    )
    print(
        format_table([evaluation_row(args.model, "photos", result["summary"], scheme.keeps_plaintext_label)])
    )
    print(f"wrote {out}")
    return EXIT_OK


def evaluation_row(model: str, dataset: str, s: dict, keeps_plaintext_label: bool) -> dict[str, str]:
    """The figures that mean something for the scheme: ACC_p, ADP and label agreement only
    where the cloud runs the plaintext classifier (an EtC model on plaintexts means nothing)."""
    labelled = "acc_plain" in s  # photos have no ground truth
    accuracy = (
        {
            "ACC_p %": f"{100 * s['acc_plain']:.2f}" if labelled else "-",
            "ACC_e %": f"{100 * s['acc_encrypted']:.2f}" if labelled else "-",
            "ADP %": f"{s['adp_percent']:.2f}" if labelled else "-",
            "label agreement %": f"{100 * s['label_agreement']:.2f}",
        }
        if keeps_plaintext_label
        else {"accuracy on ciphertexts %": f"{100 * s['acc_encrypted']:.2f}" if labelled else "-"}
    )
    return {
        "model": model,
        "dataset": dataset,
        "images": str(s["images"]),
        "refused": str(s["encryption_failures"]),
        **accuracy,
        "bit-exact %": f"{100 * s['bit_exact_share']:.2f}",
        "PSNR dB": f"{s['recovery_psnr_db']['mean']:.2f}",
        "SSIM": f"{s['recovery_ssim']['mean']:.4f}",
        "SSIM(cipher, plain)": f"{s['ssim_cipher_vs_plain']['mean']:.4f}",
    }


def files_in(folder: Path) -> list[Path]:
    return [src for src, _ in plan(folder, None)]


def recovery_columns(recovered: list[np.ndarray] | None, plain: list[np.ndarray]) -> dict[str, str]:
    """The demo's recovery figures; "-" for a scheme that does not recover (by design)."""
    from noiseveil.metrics import psnr, ssim

    if recovered is None:
        return {"bit-exact %": "-", "PSNR dB": "-", "SSIM": "-"}
    pairs = list(zip(recovered, plain, strict=True))
    return {
        "bit-exact %": f"{100 * np.mean([np.array_equal(r, p) for r, p in pairs]):.1f}",
        "PSNR dB": f"{np.mean([psnr(r[None], p[None])[0] for r, p in pairs]):.2f}",
        "SSIM": f"{np.mean([ssim(r[None], p[None])[0] for r, p in pairs]):.4f}",
    }


def demo_images(dataset: str, n: int) -> list[tuple[str, np.ndarray, int | None]]:
    """(file name, image, true label or None) of the demo's test images: a fixed subset of the
    dataset's test split, or for a model of photos the ``n`` largest sample photos (no labels)."""
    from noiseveil.data import PHOTOS, fixed_subset, load_photos

    if dataset == PHOTOS:
        photos = sorted(load_photos(), key=lambda p: -p[1].size)[:n]
        return [(f"{name}.png", image, None) for name, image in photos]
    data = load_dataset(dataset)
    idx = fixed_subset(len(data.x_test), n, seed=0)
    return [(f"{i:05d}_{data.classes[data.y_test[i]]}.png", data.x_test[i], int(data.y_test[i])) for i in idx]


def demo_grid(rows: list[list[np.ndarray]], titles: list[str], path: Path) -> Path:
    """The demo's picture: a row per stage, a column per image; for images of several sizes
    (photos), one row: the largest photo, its ciphertext and its recovery, side by side."""
    from noiseveil.app.figures import picture_grid

    if len({image.shape for image in rows[0]}) == 1:
        return picture_grid([np.stack(row) for row in rows], titles, path)
    largest = max(range(len(rows[0])), key=lambda i: rows[0][i].size)  # a photo row: the largest photo
    photo_row = np.stack([row[largest] for row in rows])  # ciphertext and recovery: the photo's own size
    return picture_grid([photo_row], [" | ".join(titles)], path, scale=4.0)


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job: real test images through the real file pipeline, for every shipped model."""
    from noiseveil.app.provenance import provenance, write_result
    from noiseveil.io.png import write_image
    from noiseveil.metrics import ssim

    run = args.out / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    run.mkdir(parents=True, exist_ok=False)
    key_path = run / "demo.key"
    keys: dict[type[Key], Key] = {}  # one demo key per kind of key, shared by the models using it
    rows, grids, status = [], [], EXIT_OK
    models, manifest = shipped_schemes(), read_manifest()
    for n, model_id in enumerate(models, 1):
        dataset = manifest[model_id]["dataset"]

        def step(doing: str, model_id: str = model_id):  # a line as each starts, then every 10 s
            return heartbeat(f"demo: {model_id}: {doing}")

        with step(f"({n} of {len(models)}) loading the model and the {dataset} test images"):
            scheme = load_scheme(model_id)
            samples = demo_images(dataset, args.images)
        model_key = scheme.bound_key  # a key-bound model (EtC) works with its own (public) key only
        if model_key is None and scheme.key_type.secret_bits is None:  # a trained key: the shipped demo one
            model_key = scheme.demo_key()
        if model_key is None:
            if scheme.key_type not in keys:
                keys[scheme.key_type] = scheme.demo_key()
                if scheme.capabilities.key is not None and not key_path.exists():
                    keys[scheme.key_type].save(key_path)  # the demo's secret key, kept with its files
            model_key = keys[scheme.key_type]
        plain_dir, cipher_dir, rec_dir = (run / part / model_id for part in ("plain", "cipher", "recovered"))
        plain_dir.mkdir(parents=True)
        for name, image, _ in samples:
            write_image(plain_dir / name, image)
        with step(f"encrypting {len(samples)} images"):
            reports = [encrypt_files(scheme, model_key, plan(plain_dir, cipher_dir), progress=False)]
        recovers = scheme.capabilities.recovers  # TransNet's protected images are not recoverable
        if recovers:
            with step(f"decrypting {len(samples)} images"):
                schemes = lambda _m, s=scheme: s  # noqa: E731  (every file: this model)
                reports.append(decrypt_files(schemes, model_key, plan(cipher_dir, rec_dir), progress=False))
        with step("classifying the plaintexts and the ciphertexts"):
            cloud = cloud_model(model_id, scheme)
            labels = [
                classify_files(
                    cloud.classifier, cloud.image_shape, files_in(d), progress=False, any_size=cloud.any_size
                )
                for d in (plain_dir, cipher_dir)
            ]
        if not all(r.ok for r in [*reports, *labels]):
            status = EXIT_FAILED_FILES
            for r in [*reports, *labels]:
                finish(r)
            continue
        plain, cipher = ([read_image(p) for p in files_in(d)] for d in (plain_dir, cipher_dir))
        recovered = [read_image(p) for p in files_in(rec_dir)] if recovers else None
        plain_labels, cipher_labels = (np.array([r[1] for r in report.results]) for report in labels)
        truth = [t for _, _, t in sorted(samples, key=lambda s: s[0])]  # files sort by name
        # RIC's cloud model is the plaintext model, so C(x') = C(x) is the check; an EtC model
        # only knows EtC images, so its labels on plaintexts mean nothing.
        agree = f"{100 * np.mean(plain_labels == cipher_labels):.1f}" if scheme.keeps_plaintext_label else "-"
        pairs = list(zip(cipher, plain, strict=True))
        accuracy = "-" if truth[0] is None else f"{100 * np.mean(cipher_labels == np.array(truth)):.1f}"
        rows.append(
            {
                "model": model_id,
                "images": str(len(plain)),
                "label agreement %": agree,
                "cipher accuracy %": accuracy,
                **recovery_columns(recovered, plain),
                "SSIM(cipher, plain)": f"{np.mean([ssim(c[None], p[None])[0] for c, p in pairs]):.4f}",
            }
        )
        shown = [plain, cipher] + ([recovered] if recovers else [])
        titles = ["plaintext", "ciphertext", "recovered"][: len(shown)]
        grids.append(demo_grid(shown, titles, run / f"grid-{model_id}.png"))
    if not rows:
        raise ZooError("no shipped scheme model could run")
    datasets = sorted({manifest[r["model"]]["dataset"] for r in rows})
    record = {
        **provenance(datasets, [r["model"] for r in rows]),
        "images_per_model": args.images,
        "rows": rows,
        "grids": [g.name for g in grids],
    }
    write_result(run / "demo.json", record)  # what scripts/record_demo.py keeps in results/demo/
    print(format_table(rows))
    print("(throughput: scripts/benchmark_throughput.py; a handful of images mostly measures warm-up)")
    for grid in grids:
        print(f"grid: {grid}")
    print(f"files: {run}")
    return status

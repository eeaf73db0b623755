"""What each CLI command does (argument parsing lives in :mod:`noiseveil.app.cli`)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from noiseveil.app.cloud_commands import cmd_cloud, cmd_serve  # noqa: F401  (dispatched by name)
from noiseveil.app.distributed import Job
from noiseveil.app.exit_codes import EXIT_FAILED_FILES, EXIT_OK
from noiseveil.app.model_commands import cmd_model  # noqa: F401  (dispatched by name)
from noiseveil.app.services import (
    CloudModel,
    cloud_model,
    finish,
    key_for,
    open_scheme,
    say_left_out,
    schemes_by_id,
    torchscript_cloud,
)
from noiseveil.checksums import sha256_bytes
from noiseveil.crypto.keys import Key, KeyFileError, NoKey, load_key
from noiseveil.data import PHOTOS, DataError, cache_dir, load_dataset, read_image
from noiseveil.exceptions import NoiseveilError
from noiseveil.io.png import CiphertextFileError, read_ciphertext
from noiseveil.pipeline import (
    Report,
    classify_files,
    decrypt_files,
    encrypt_files,
    left_out,
    plan,
    plan_listed,
    without_existing_outputs,
)
from noiseveil.progress import heartbeat
from noiseveil.schemes.base import Scheme
from noiseveil.zoo import (
    ZooError,
    load_scheme,
    model_figure,
    read_manifest,
    shipped_schemes,
)


def cmd_keygen(args: argparse.Namespace) -> int:
    """A new key made by the scheme of ``--model`` (trained, for schemes whose key is a
    network), or with ``--demo`` the PUBLIC demo key the model ships with."""
    scheme = load_scheme(args.model)
    if scheme.capabilities.key is None:
        raise ZooError(f"model {args.model} is keyless: it needs no key (encrypt without -k)")
    if args.path.exists():  # before minutes of training, not after
        raise ZooError(f"{args.path}: exists; refusing to overwrite a key file")
    if args.demo:
        key = scheme.demo_key()
        key.save(args.path)
        print(f"wrote {args.path} (key id {key.key_id}): the PUBLIC demo key of {args.model}, no privacy")
        return EXIT_OK
    checkpoint = cache_dir() / "keygen" / f"{args.model}-{sha256_bytes(str(args.path.resolve()))[:16]}.ckpt"
    key = scheme.keygen(progress=not args.quiet, checkpoint=checkpoint, budget=args.steps)
    key.save(args.path)
    checkpoint.unlink(missing_ok=True)
    print(f"wrote {args.path} (key id {key.key_id}, mode 0600); keep it secret, keep a backup")
    if scheme.capabilities.key_bound_to_model:
        print(
            f"note: {args.model} classifies images of its own key only; train a model for this key "
            f"(noiseveil train {args.model} --as ID --key {args.path}) or use --demo"
        )
    return EXIT_OK


def cmd_encrypt(args: argparse.Namespace) -> int:
    scheme = open_scheme(args.model, args.classifier)
    key = key_for(scheme, args.key)
    if args.nae_steps is not None:
        scheme = scheme.with_nae(steps=args.nae_steps)
    scheme.publish_key_id = not args.no_key_id
    pairs, skipped, others = pending_pairs(args)
    scheme.check_key(key)  # refused here, before any batch (or Ray task) starts
    left = say_left_out(args.command, args.input, others)
    job = Job("encrypt", args.model, args.classifier, args.nae_steps, not args.no_key_id)
    report = here_or_on_ray(
        args, job, key, pairs, lambda: encrypt_files(scheme, key, pairs, args.batch_size, not args.quiet)
    )
    report.skipped, report.left_out = skipped, left
    return finish(report, resumable=not args.skip_existing)


def here_or_on_ray(
    args: argparse.Namespace, job: Job, key: Key | None, items: list, here: Callable[[], Report]
) -> Report:
    """``here()`` in this process, or the same batches as Ray tasks with ``--ray``."""
    if args.ray is None:
        return here()
    from noiseveil.app.distributed import run_on_ray

    return run_on_ray(job, key, items, args.batch_size, args.ray or None, progress=not args.quiet)


def pending_pairs(args: argparse.Namespace) -> tuple[list[tuple[Path, Path]], int, list[Path]]:
    """(input, output) pairs to do, how many --skip-existing left alone, and the files of the
    input that are not images (for :func:`say_left_out`)."""
    pairs, others = planned(args, args.output)
    todo, skipped = without_existing_outputs(pairs) if args.skip_existing else (pairs, 0)
    return todo, skipped, others


def planned(
    args: argparse.Namespace, output: Path | None
) -> tuple[list[tuple[Path, Path | None]], list[Path]]:
    """The input folder or file, or only the files ``--files-from`` lists inside the folder;
    and the files of the folder left out for not being images (none for a list)."""
    if args.files_from is not None:
        return plan_listed(args.input, read_file_list(args.files_from), output), []
    pairs = plan(args.input, output, folder=getattr(args, "output_is_folder", False))
    return pairs, left_out(args.input, output)


def read_file_list(path: Path) -> list[str]:
    """The list's lines, one path each ('-': standard input)."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err
        raise DataError(f"{path}: cannot read the file list ({reason})") from None
    return text.splitlines()


def cmd_decrypt(args: argparse.Namespace) -> int:
    # Each ciphertext's scheme checks that it can use the key; without -k, only keyless images
    # are read, and those say they do not decrypt.
    key = load_key(args.key) if args.key is not None else NoKey()
    pairs, skipped, others = pending_pairs(args)
    if args.key is None:
        refuse_keyed_without_key(pairs)
    left = say_left_out(args.command, args.input, others)
    job = Job("decrypt", classifier_file=args.classifier)
    schemes = schemes_by_id(args.classifier)
    report = here_or_on_ray(
        args, job, key, pairs, lambda: decrypt_files(schemes, key, pairs, args.batch_size, not args.quiet)
    )
    report.skipped, report.left_out = skipped, left
    return finish(report, resumable=not args.skip_existing)


def refuse_keyed_without_key(pairs: list[tuple[Path, Path]]) -> None:
    """decrypt without -k: refused once, before any work, when a file to decrypt was made with
    a key (its header carries a tag), as encrypt refuses; a keyless model's images (TransNet's)
    need none and say on their own that they do not decrypt. Unreadable files fail later, each
    on its FAILED line."""
    for src, _ in pairs:
        try:
            authenticated = read_ciphertext(src).authenticated
        except NoiseveilError:
            continue
        if authenticated:
            raise KeyFileError(f"{src} was encrypted with a key: -k KEY, the key file it was encrypted with")


def cmd_classify(args: argparse.Namespace) -> int:
    if args.json is not None and args.json.exists():
        raise CiphertextFileError(f"{args.json}: exists; refusing to overwrite")
    pairs, others = planned(args, None)
    files = [src for src, _ in pairs]
    if args.classifier is not None:
        cloud = torchscript_cloud(args.classifier)  # the first readable image sets the shape
        groups = {cloud.model_id: (cloud, files)}
        unread = Report("classify")
    elif args.model is not None:
        groups, unread = {args.model: (cloud_model(args.model), files)}, Report("classify")
    else:
        groups, unread = models_named_in(files)
    left = say_left_out(args.command, args.input, others)  # the classifier is loaded: it runs
    report, rows = unread, []
    for model_id, (cloud, group) in groups.items():
        part = classify_group(args, model_id, cloud, group)
        report.absorb(part)
        rows += [
            {
                "file": str(f),
                "label": label,
                "class": cloud.classes[label] if cloud.classes else str(label),
                "classifier": cloud.model_id,
            }
            for f, label in part.results
        ]
    report.left_out = left
    for row in rows:
        print(f"{row['file']}\t{row['label']}\t{row['class']}")
    if args.json is not None:
        with open(args.json, "x") as f:
            json.dump({"classifier": ", ".join(groups), "predictions": rows}, f, indent=2)
    return finish(report)


def classify_group(args: argparse.Namespace, model_id: str, cloud: CloudModel, files: list[Path]) -> Report:
    """Classify one model's files, in this process or as Ray tasks (``--ray``)."""

    def here() -> Report:
        return classify_files(
            cloud.classifier, cloud.image_shape, files, args.batch_size, not args.quiet, cloud.any_size
        )

    # On Ray, every batch checks against the shape one process would take: the first readable image's.
    fixed = cloud.image_shape or cloud.any_size
    shape = cloud.image_shape or (first_readable_shape(files) if args.ray is not None and not fixed else None)
    job = Job("classify", None if args.classifier else model_id, args.classifier, image_shape=shape)
    return here_or_on_ray(args, job, None, files, here)


def first_readable_shape(files: list[Path]) -> tuple[int, int, int] | None:
    for f in files:
        try:
            return read_image(f, channels=None).shape
        except NoiseveilError:
            continue
    return None


def models_named_in(files: list[Path]) -> tuple[dict[str, tuple[CloudModel, list[Path]]], Report]:
    """Group ciphertext files by the model their header names (classify without -m); a file
    that is not a ciphertext, or names a model that is not here, fails with one line."""
    report, named = Report("classify"), {}
    for path in files:
        try:
            named.setdefault(read_ciphertext(path).decrypt_model, []).append(path)
        except CiphertextFileError as err:
            report.fail(path, f"{err}; to classify plain images, name the classifier with -m")
    groups = {}
    for model_id, group in named.items():
        try:
            groups[model_id] = (cloud_model(model_id), group)
        except NoiseveilError as err:
            for path in group:
                report.fail(path, err)
    return groups, report


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


def format_table(rows: list[dict[str, str]]) -> str:
    cols = list(rows[0])
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in cols]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))  # noqa: E731
    return "\n".join(
        [line(cols), line(["-" * w for w in widths]), *(line([r[c] for c in cols]) for r in rows)]
    )


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
    for n, model_id in enumerate(shipped_schemes(), 1):
        dataset = read_manifest()[model_id]["dataset"]

        def step(doing: str, model_id: str = model_id):  # a line as each starts, then every 10 s
            return heartbeat(f"demo: {model_id}: {doing}")

        with step(f"({n} of {len(shipped_schemes())}) loading the model and the {dataset} test images"):
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
    datasets = sorted({read_manifest()[r["model"]]["dataset"] for r in rows})
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


def cmd_models(args: argparse.Namespace) -> int:
    manifest = read_manifest()
    if not manifest:
        raise ZooError("no shipped models")
    rows = []
    for model_id, e in sorted(manifest.items()):
        metric = model_figure(e)
        rows.append(
            {
                "id": model_id,
                "zoo": "yours" if e.get("zoo") == "user" else "shipped",
                "kind": e["kind"],
                "dataset": e.get("dataset") or "-",
                "figure": metric,
                "size": f"{e['bytes'] / 1e6:.2f} MB",
                "sha256": e["sha256"][:12],
            }
        )
    print(format_table(rows))
    return EXIT_OK


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from noiseveil.app.train_commands import train_classifier_command

    r = train_classifier_command(args.model_id, args.epochs, args.checkpoint_dir, args.save_as, args.replace)
    print(f"{args.model_id}: test accuracy {100 * r['test_accuracy']:.2f}% in {r['train_seconds']:.0f}s")
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from noiseveil.app.train_commands import train_scheme_command

    key = load_key(args.key) if args.key else None
    r = train_scheme_command(
        args.model_id,
        args.steps,
        args.checkpoint_dir,
        args.preset,
        args.save_as,
        key,
        args.replace,
        args.cloud,
    )
    done = f"trained in {r['train_seconds']:.0f}s" if r["train_seconds"] else "shipped (nothing to train)"
    print(f"{args.model_id}: {done}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from noiseveil.app.provenance import RESULTS_DIR
    from noiseveil.app.reports.registry import OPTION_FLAGS, REPORTS

    report, out = REPORTS[args.paper], args.out or RESULTS_DIR / args.paper
    if args.render_only:  # text changes only: every number is re-read from the JSON
        saved = report.render_saved(out)
        print(f"wrote {out / 'report.md'} from {saved}")
        return EXIT_OK
    values = {flag: getattr(args, flag.replace("-", "_")) for flag in OPTION_FLAGS}
    given = {flag: value for flag, value in values.items() if value is not None}
    report.check_options(given)  # before anything runs, so that a typo costs no hour of work
    print(report.run(out, given))
    return EXIT_OK

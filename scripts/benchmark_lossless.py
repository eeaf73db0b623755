"""Throughput of RIC's lossless preset against the masked preset, measured in one run.

    python scripts/benchmark_lossless.py --images 2000

Both models run on the same fixed subset of CIFAR-10's test set (32x32), in batch mode, through
the Python API (encryption includes its self-check: every ciphertext is decrypted from its PNG
bytes and classified before it is returned) and through the file pipeline (PNG files in and
out, as `noiseveil encrypt` / `decrypt` run), beside the time this disk takes to create a
file (before and after each model's file runs: it varies); decryption again with its files in
RAM (/dev/shm: the pipeline without the disk's file creation), and both on worker processes
(``--processes``, their start-up included). A stage split says where the lossless preset's
time goes. Beside each rate: the floor (one plain forward pass of the cloud's classifier per
image, batched alike), encryption's cost in those passes, and the file pipeline's rate over the
API's. Each run encrypts under a key of its own, so that the lossless preset's warm starts
(``WarmStarts``: an image starts from high parts that brought an earlier image of its label
home) begin cold, as a user's job does; the attack's evaluated passes per image are counted for
the first batch and the whole run. Writes results/benchmark/lossless-vs-masked-cifar10.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from noiseveil.app.cli import positive_int
from noiseveil.app.distributed import Job, run_in_processes
from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.crypto.keys import SecretKey
from noiseveil.data import fixed_subset, load_dataset, to_tensor
from noiseveil.io.png import ciphertext_from_bytes, ciphertext_to_bytes, write_image, write_new_file
from noiseveil.pipeline import Report, decrypt_files, encrypt_files, plan
from noiseveil.schemes.nae import discrete_nae
from noiseveil.schemes.ric_lossless import pack_image
from noiseveil.timing import timed
from noiseveil.zoo import load_scheme


def attack_passes(scheme) -> int:
    """Images the NAE attack has evaluated so far (one per image and step; lossless preset)."""
    return scheme.encryption_stats()["attack_passes"]


def api_rates(scheme, x: torch.Tensor, batch: int) -> dict[str, float]:
    scheme.encrypt(x[:batch], SecretKey.generate())  # warm-up: one-off allocation costs (another key)
    key = SecretKey.generate()
    classifier = scheme.cloud_classifier()
    with torch.no_grad():  # the floor: one plain forward pass of the cloud's classifier per image
        _, forward = timed(lambda: [classifier(x[i : i + batch]) for i in range(0, len(x), batch)])
    enc = dec = 0.0
    passes = [attack_passes(scheme)]
    for start in range(0, len(x), batch):
        cts, t = timed(scheme.encrypt, x[start : start + batch], key)
        enc += t
        passes.append(attack_passes(scheme))
        _, t = timed(scheme.decrypt, cts, key)
        dec += t
    rates = {
        "plain_forward_images_per_second": len(x) / forward,
        "encrypt_images_per_second": len(x) / enc,
        "decrypt_images_per_second": len(x) / dec,
        "encrypt_seconds_over_one_forward": enc / forward,
    }
    if passes[-1] > passes[0]:  # the lossless preset counts its attack's passes
        rates["attack_passes_per_image_first_batch"] = (passes[1] - passes[0]) / min(batch, len(x))
        rates["attack_passes_per_image_later_batches"] = (passes[-1] - passes[1]) / max(1, len(x) - batch)
    return rates


def file_creation_seconds(folder: Path, n: int, size: int = 3 * 1024) -> float:
    """Seconds to create one new file of ``size`` bytes as the pipeline does (write_new_file:
    a temporary file linked into place), in a fresh folder: the floor any pipeline that writes
    a file per image pays on this disk, measured beside its runs."""
    folder.mkdir()
    data = bytes(size)
    start = time.perf_counter()
    for i in range(n):
        write_new_file(folder / f"{i:05d}.png", data)
    return (time.perf_counter() - start) / n


def file_rates(scheme, plain: np.ndarray, batch: int, processes: int) -> dict[str, float]:
    """Images/s through files: on this disk in one process (as `noiseveil encrypt` / `decrypt`
    run), decryption again into and out of a folder in RAM (what the pipeline costs without the
    disk's file creation), and on ``processes`` worker processes (`--processes`, their start-up
    included)."""
    work = Path(tempfile.mkdtemp(prefix="nv-bench-"))
    ram = Path(tempfile.mkdtemp(prefix="nv-bench-", dir="/dev/shm")) if Path("/dev/shm").is_dir() else None
    try:
        creation = file_creation_seconds(work / "creation", len(plain))
        for i, image in enumerate(plain):
            write_image(work / "plain" / f"{i:05d}.png", image)
        rates = {"file_creation_ms": 1e3 * creation}
        key = SecretKey.generate()  # warm starts begin cold, as in a user's first job
        here = lambda _model: scheme  # noqa: E731 (decrypt_files asks for each file's scheme)
        enc = encrypt_files(scheme, key, plan(work / "plain", work / "cipher"), batch, progress=False)
        dec = decrypt_files(here, key, plan(work / "cipher", work / "rec"), batch, progress=False)
        rates |= _rates("files", enc, dec, len(plain))
        if ram is not None:
            shutil.copytree(work / "cipher", ram / "cipher")
            dec = decrypt_files(here, key, plan(ram / "cipher", ram / "rec"), batch, progress=False)
            rates |= _rates("files_in_ram", None, dec, len(plain))
        key = SecretKey.generate()
        pairs = plan(work / "plain", work / "cipher-p")
        enc = run_in_processes(Job("encrypt", scheme.model_id), key, pairs, batch, processes, progress=False)
        pairs = plan(work / "cipher-p", work / "rec-p")
        dec = run_in_processes(Job("decrypt"), key, pairs, batch, processes, progress=False)
        rates |= _rates(f"files_{processes}_processes", enc, dec, len(plain))
        rates["file_creation_ms_after"] = 1e3 * file_creation_seconds(work / "creation-after", len(plain))
        return rates
    finally:
        shutil.rmtree(work)
        if ram is not None:
            shutil.rmtree(ram)


def _rates(prefix: str, enc: Report | None, dec: Report, n: int) -> dict[str, float]:
    if not dec.ok or (enc is not None and not enc.ok):
        raise SystemExit(f"benchmark run failed: {enc.summary() if enc else ''}; {dec.summary()}")
    rates = {f"{prefix}_decrypt_images_per_second": n / dec.seconds}
    if enc is not None:
        rates[f"{prefix}_encrypt_images_per_second"] = n / enc.seconds
    return rates


def lossless_stages(scheme, x: torch.Tensor, plain: np.ndarray, earlier: torch.Tensor) -> dict[str, float]:
    """Seconds per image of each stage of lossless encryption and decryption, on one batch,
    the attack from the keyed start (a job's first images) and warm (after ``earlier``)."""
    n, key = len(x), SecretKey.generate()
    classifier = scheme.cloud_classifier()
    with torch.no_grad():
        targets, t_classify = timed(lambda: classifier(x).argmax(1))
    shape = tuple(plain.shape[1:])
    packed, t_pack = timed(lambda: [pack_image(image, scheme.capacity(shape)) for image in plain])
    nonces = [bytes([i % 256]) * 16 for i in range(n)]
    digits, t_seal = timed(
        lambda: torch.stack(
            [scheme._seal_digits(key, nonce, p, shape) for nonce, p in zip(nonces, packed, strict=True)]
        )
    )
    start = scheme._start(key, nonces, shape)
    _, t_nae = timed(discrete_nae, classifier, digits, targets, start, scheme.modulus, scheme.nae)
    scheme.encrypt(earlier, key)  # the warm starts of a job past its first images
    warm = scheme.warm_starts(key, shape, targets, start)
    _, t_warm = timed(discrete_nae, classifier, digits, targets, warm, scheme.modulus, scheme.nae)
    cts = scheme.encrypt(x, key)
    _, t_check = timed(scheme.check_ciphertexts, x, cts, key, targets)
    blobs, t_png_write = timed(lambda: [ciphertext_to_bytes(ct) for ct in cts])
    reread, t_png_read = timed(lambda: [ciphertext_from_bytes(b) for b in blobs])
    _, t_verify = timed(lambda: [scheme.verify(ct, key) for ct in reread])
    _, t_open = timed(lambda: [scheme.decrypt_pixels(ct.pixels, ct.fields, key) for ct in reread])
    per_image = {
        "encrypt: classify plaintexts": t_classify,
        "encrypt: WebP lossless compression": t_pack,
        "encrypt: AEAD seal and digits": t_seal,
        "encrypt: NAE attack from the keyed start": t_nae,
        "encrypt: NAE attack, warm start": t_warm,
        "encrypt: self-check (decrypt from PNG bytes, classify the ciphertext)": t_check,
        "PNG write (to bytes)": t_png_write,
        "PNG read (from bytes)": t_png_read,
        "decrypt: HMAC verification": t_verify,
        "decrypt: digits, AEAD open, WebP decode": t_open,
    }
    return {k: v / n for k, v in per_image.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", nargs=2, default=["ric-cifar10", "ric-cifar10-masked"])
    parser.add_argument(
        "--processes",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="worker processes of the --processes runs",
    )
    args = parser.parse_args()

    data = load_dataset("cifar10")
    plain = data.x_test[fixed_subset(len(data.x_test), args.images)]
    x = to_tensor(plain)
    rows = {}
    for model_id in args.models:
        scheme = load_scheme(model_id)
        print(f"{model_id}: API ...", flush=True)
        rows[model_id] = api_rates(scheme, x, args.batch_size)
        print(f"{model_id}: files ...", flush=True)
        rows[model_id].update(file_rates(scheme, plain, args.batch_size, args.processes))
        r = rows[model_id]
        for run in ("files", "files_in_ram", f"files_{args.processes}_processes"):
            for action in ("decrypt", "encrypt"):
                if f"{run}_{action}_images_per_second" in r:
                    r[f"{run}_over_api_{action}"] = (
                        r[f"{run}_{action}_images_per_second"] / r[f"{action}_images_per_second"]
                    )
        print(f"{model_id}: {r}", flush=True)
    lossless, masked = args.models
    ratios = {k: rows[lossless][k] / rows[masked][k] for k in rows[lossless] if k in rows[masked]}
    b = args.batch_size
    stages = lossless_stages(load_scheme(lossless), x[:b], plain[:b], x[b : 2 * b])
    result = {
        **provenance([data.source_id], [*args.models, "cifar10-resnet"]),
        "images": len(plain),
        "image_shape": list(plain.shape[1:]),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "processes": args.processes,
        "rates": rows,
        "ratio_lossless_to_masked": ratios,
        "lossless_seconds_per_image_by_stage": stages,
    }
    out = RESULTS_DIR / "benchmark" / "lossless-vs-masked-cifar10.json"
    write_result(out, result)
    for model_id, r in rows.items():
        print(f"{model_id}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()))
    print("lossless stages (ms per image): " + ", ".join(f"{k} {1e3 * v:.3f}" for k, v in stages.items()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

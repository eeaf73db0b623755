"""Encryption / decryption throughput of a scheme model, NAE generation included.

    python scripts/benchmark_throughput.py --model ric-cifar10-masked --images 512

Runs the real Python API on a fixed subset of the model's test set, in batch mode, and splits
the time into its stages (keyed noise, NAE attack, networks, PNG encode/decode) so that a
slow run says where the time goes. Writes results/benchmark/throughput-<model>.json.
"""

from __future__ import annotations

import argparse
import time

import torch

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.data import fixed_subset, load_dataset, to_tensor
from noiseveil.io.png import read_ciphertext, write_ciphertext
from noiseveil.timing import timed
from noiseveil.zoo import load_scheme, read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ric-cifar10-masked")
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    scheme = load_scheme(args.model)
    entry = read_manifest()[args.model]
    data = load_dataset(entry["dataset"])
    x = to_tensor(data.x_test[fixed_subset(len(data.x_test), args.images)])
    key = scheme.keygen()
    scheme.encrypt(x[: args.batch_size], key)  # warm-up: first calls pay one-off allocation costs

    enc = dec = 0.0
    cts = []
    for start in range(0, len(x), args.batch_size):
        batch = x[start : start + args.batch_size]
        cts, t = timed(scheme.encrypt, batch, key)
        enc += t
        _, t = timed(scheme.decrypt, cts, key)
        dec += t

    # Stage split on one batch: what encryption spends its time on.
    batch = x[: args.batch_size]
    nonces = [bytes(16)] * len(batch)
    targets = scheme.classifier(batch).argmax(1)
    noise, t_noise = timed(scheme.noise, key, nonces)
    pad, t_pad = timed(scheme.pad, key, nonces)  # None unless the model uses a keyed pad
    t_noise += t_pad
    n_adv, t_nae = timed(scheme.nae_from_noise, noise, targets)
    with torch.no_grad():
        x_q, t_net_enc = timed(scheme.model.encode, batch, n_adv, pad)
        _, t_net_dec = timed(scheme.model.decode, x_q, n_adv, pad)
    tmp = RESULTS_DIR.parent / "out" / "bench-png"
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    paths = []
    for i, ct in enumerate(cts):
        path = tmp / f"{time.time_ns()}-{i}.png"
        write_ciphertext(path, ct)
        paths.append(path)
    png_w = time.perf_counter() - t0
    t0 = time.perf_counter()
    for path in paths:
        read_ciphertext(path)
    png_r = time.perf_counter() - t0
    for path in paths:
        path.unlink()

    n = len(x)
    b = len(batch)
    stage_total = t_noise + t_nae + t_net_enc
    result = {
        **provenance([data.source_id], [args.model, entry["classifier_id"]]),
        "images": n,
        "image_shape": list(scheme.image_shape),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "nae": {"steps": scheme.nae.steps, "lr": scheme.nae.lr, "chunk": scheme.nae.chunk},
        "encrypt_images_per_second": n / enc,
        "decrypt_images_per_second": n / dec,
        "png_write_images_per_second": len(paths) / png_w,
        "png_read_images_per_second": len(paths) / png_r,
        "encrypt_stage_share": {
            "keyed_noise_and_pad": t_noise / stage_total,
            "nae_attack": t_nae / stage_total,
            "feature_extractor_and_encoder": t_net_enc / stage_total,
        },
        "decoder_seconds_per_image": t_net_dec / b,
        "nae_seconds_per_image": t_nae / b,
    }
    out = RESULTS_DIR / "benchmark" / f"throughput-{args.model}.json"
    write_result(out, result)
    print(
        f"{args.model}: encrypt {n / enc:.1f} img/s, decrypt {n / dec:.1f} img/s "
        f"(batch {args.batch_size}, {torch.get_num_threads()} threads); NAE share of encryption "
        f"{100 * t_nae / stage_total:.0f}%"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

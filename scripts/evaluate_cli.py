"""A scheme model's figures through the real command line, as a user runs it.

    python scripts/evaluate_cli.py --model ric-cifar10 --images 500
    python scripts/evaluate_cli.py --model ric-lfw --images 0      # 0: the whole test set

Writes ``fixed_subset(len(test), N, seed=0)`` of the model's test set as PNG files, then runs
`noiseveil keygen`, `noiseveil encrypt`, `noiseveil classify` (plaintexts and ciphertexts, as
the cloud does) and `noiseveil decrypt` as separate processes, decryption with another thread
count than encryption, and compares the files: bit-exact share, label agreement, ACC_p,
ACC_e, ADP, SSIM(ciphertext, plaintext), the commands' exit statuses and summary lines.
Writes results/evaluate/cli-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.data import fixed_subset, load_dataset, read_image
from noiseveil.io.png import write_image
from noiseveil.metrics import accuracy_drop_proportion, describe, psnr, ssim
from noiseveil.zoo import read_manifest


def noiseveil(*args: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "noiseveil.app.cli", *args], capture_output=True, text=True, env=env
    )
    lines = proc.stderr.strip().splitlines()
    print(f"noiseveil {args[0]}: exit {proc.returncode}; {lines[-1] if lines else ''}", flush=True)
    return {
        "args": list(args),
        "threads": threads,
        "exit_status": proc.returncode,
        "seconds": time.perf_counter() - start,
        "failed_lines": [line for line in lines if line.startswith("FAILED")],
        "summary": lines[-1] if lines else "",
    }


def labels_of(path: Path) -> dict[str, int]:
    return {Path(p["file"]).name: p["label"] for p in json.loads(path.read_text())["predictions"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ric-cifar10")
    parser.add_argument("--images", type=int, default=500, help="test images (0: the whole test set)")
    args = parser.parse_args()
    entry = read_manifest()[args.model]
    data = load_dataset(entry["dataset"])
    n = args.images or len(data.x_test)
    idx = fixed_subset(len(data.x_test), n, seed=0)
    with tempfile.TemporaryDirectory(prefix="nv-cli-") as tmp:
        work = Path(tmp)
        names = [f"{i:05d}.png" for i in idx]
        for name, i in zip(names, idx, strict=True):
            write_image(work / "plain" / name, data.x_test[i])
        runs = {"keygen": noiseveil("keygen", str(work / "k.key"), threads=2)}
        key = str(work / "k.key")
        enc = ["encrypt", str(work / "plain"), "-o", str(work / "cipher"), "-k", key, "-m", args.model]
        runs["encrypt"] = noiseveil(*enc, "--quiet", threads=2)
        classifier = entry["classifier_id"]
        for what in ("plain", "cipher"):
            labels = ["--json", str(work / f"{what}.json"), "--quiet"]
            runs[f"classify {what}"] = noiseveil(
                "classify", str(work / what), "-m", classifier, *labels, threads=2
            )
        dec = ["decrypt", str(work / "cipher"), "-o", str(work / "rec"), "-k", key, "--quiet"]
        runs["decrypt"] = noiseveil(*dec, threads=1)  # another thread count than encryption
        written = [name for name in names if (work / "cipher" / name).exists()]
        plain = np.stack([read_image(work / "plain" / name, channels=None) for name in written])
        cipher = np.stack([read_image(work / "cipher" / name, channels=None) for name in written])
        recovered = np.stack([read_image(work / "rec" / name, channels=None) for name in written])
        plain_labels, cipher_labels = labels_of(work / "plain.json"), labels_of(work / "cipher.json")
    truth = dict(zip(names, data.y_test[idx].tolist(), strict=True))
    p = np.array([plain_labels[name] for name in written])
    c = np.array([cipher_labels[name] for name in written])
    t = np.array([truth[name] for name in written])
    acc_p, acc_e = float((p == t).mean()), float((c == t).mean())
    exact = (recovered == plain).reshape(len(plain), -1).all(1)
    result = {
        **provenance([data.source_id], [args.model, classifier]),
        "model": args.model,
        "images": n,
        "subset": f"fixed_subset({len(data.x_test)}, {n}, seed=0) of the test split",
        "ciphertexts_written": len(written),
        "encryption_failures": n - len(written),
        "bit_exact_share": float(exact.mean()),
        "not_exact_psnr_db": psnr(recovered[~exact], plain[~exact]).tolist() if (~exact).any() else [],
        "label_agreement": float((p == c).mean()),
        "acc_plain": acc_p,
        "acc_encrypted": acc_e,
        "adp_percent": accuracy_drop_proportion(acc_p, acc_e),
        "ssim_cipher_vs_plain": describe(ssim(cipher, plain)),
        "commands": runs,
    }
    out = RESULTS_DIR / "evaluate" / f"cli-{args.model}.json"
    write_result(out, result)
    print(
        f"{args.model}: {len(written)}/{n} encrypted, bit-exact {100 * result['bit_exact_share']:.2f} %, "
        f"label agreement {100 * result['label_agreement']:.2f} %, ADP {result['adp_percent']:.2f} %, "
        f"SSIM(cipher, plain) {result['ssim_cipher_vs_plain']['mean']:.4f}"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

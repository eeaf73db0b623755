"""AVP's cost on this machine: seconds per image to encrypt (Algorithm 1, self-check included)
and to decrypt (one pass of G), for each shipped AVP model, with its demo key.

    python scripts/benchmark_avp.py --images 32      # writes results/benchmark/avp-cost.json

One process, the machine's threads; every figure is a median over ``--repeats`` timed runs
after a warm-up, and ratios are taken within this one run.
"""

from __future__ import annotations

import argparse

import torch

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.data import fixed_subset, load_dataset, to_tensor
from noiseveil.timing import median_seconds
from noiseveil.zoo import load_scheme, shipped_schemes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32, help="images per timed batch (default: 32)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per figure (default: 1)")
    args = parser.parse_args()
    models = [m for m in shipped_schemes() if load_scheme(m).capabilities.key == "generator"]
    rows, data_ids = [], []
    for model_id in models:
        scheme = load_scheme(model_id)
        data = load_dataset(scheme.dataset)
        data_ids.append(data.source_id)
        x = to_tensor(data.x_test[fixed_subset(len(data.x_test), args.images, seed=0)])
        key = scheme.demo_key()
        print(f"{model_id}: encrypting {args.images} images ...", flush=True)
        cts = scheme.encrypt(x, key)
        encrypt = median_seconds(lambda s=scheme, k=key, x=x: s.encrypt(x, k), args.repeats)
        decrypt = median_seconds(lambda s=scheme, c=cts, k=key: s.decrypt(c, k), max(args.repeats, 3))
        rows.append(
            {
                "model_id": model_id,
                "images": args.images,
                "iterations": scheme.attack.iterations,
                "encrypt_seconds_per_image": encrypt / args.images,
                "decrypt_seconds_per_image": decrypt / args.images,
                "encrypt_to_decrypt_ratio": encrypt / decrypt,
            }
        )
        print(rows[-1], flush=True)
    result = {**provenance(data_ids, models), "threads": torch.get_num_threads(), "runs": rows}
    write_result(RESULTS_DIR / "benchmark" / "avp-cost.json", result)


if __name__ == "__main__":
    main()

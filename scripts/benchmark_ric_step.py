"""Profile of RIC training on this machine: one training step per network preset and memory
layout, against one NAE generation, which is what the paper pays for every batch.

    python scripts/benchmark_ric_step.py --model ric-cifar10-masked

The paper regenerates a 100-step C&W attack for every training batch. Our training draws
NAEs from a cached per-class pool instead (``noiseveil.schemes.ric_training``); this script
measures what that saves, and whether channels-last pays for each preset, all in one process
so that the ratios are comparable. Each figure is the median of ``--repeats`` timings after a
warm-up. Writes results/benchmark/ric-training-step-<model>.json.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.classifiers.training import predict
from noiseveil.data import fixed_subset, load_dataset, to_tensor
from noiseveil.schemes.ric import PRESETS, RIC
from noiseveil.schemes.ric_training import RICTrainConfig, random_pad, training_step
from noiseveil.timing import median_seconds
from noiseveil.zoo import SCHEME_CARDS, load_scheme

PAPER_NAE_STEPS = 100  # the paper's C&W iterations per batch


def step_timer(preset: str, channels: int, lam: float, classifier, batch: dict, layout):
    """A closure running one training step of a fresh ``preset`` model in ``layout``."""
    torch.manual_seed(0)
    model = RIC(replace(PRESETS[preset], channels=channels, lam=lam)).to(memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, n_adv = (batch[k].contiguous(memory_format=layout) for k in ("x", "n_adv"))
    pad = batch["pad"].contiguous(memory_format=layout) if model.cfg.keyed_pad else None

    def run() -> None:
        training_step(model, classifier, opt, x, n_adv, pad, batch["target"])

    params = sum(p.numel() for p in model.parameters())
    return run, params


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ric-cifar10-masked")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    scheme = load_scheme(args.model)
    card = SCHEME_CARDS[args.model]
    data = load_dataset(card.dataset)
    train = RICTrainConfig(**card.train)
    batch_size = train.batch_size
    x = to_tensor(data.x_train[fixed_subset(len(data.x_train), batch_size)])
    target = predict(scheme.classifier, x)
    key = scheme.keygen()
    nonces = [i.to_bytes(16, "big") for i in range(batch_size)]
    gen = torch.Generator().manual_seed(0)
    n_adv = scheme.nae_for(key, nonces, target)
    batch = {"x": x, "n_adv": n_adv, "pad": random_pad(n_adv, gen), "target": target}
    channels, lam = x.shape[1], scheme.model.cfg.lam

    rows = []
    for preset in ("paper", "fast", "masked"):
        for layout_name, layout in (
            ("contiguous", torch.contiguous_format),
            ("channels-last", torch.channels_last),
        ):
            run, params = step_timer(preset, channels, lam, scheme.classifier, batch, layout)
            rows.append(
                {
                    "what": "training step",
                    "preset": preset,
                    "layout": layout_name,
                    "parameters": params,
                    "seconds": median_seconds(run, args.repeats),
                }
            )
            print(rows[-1], flush=True)
    for steps in (scheme.nae.steps, PAPER_NAE_STEPS):
        cfg = replace(scheme.nae, steps=steps)
        seconds = median_seconds(
            lambda cfg=cfg: scheme.nae_for(key, nonces, target, cfg), max(2, args.repeats // 3)
        )
        rows.append({"what": f"NAE generation, {steps} steps", "seconds": seconds})
        print(rows[-1], flush=True)
    pool = n_adv.repeat(train.pool_per_class, 1, 1, 1)
    pick = torch.randint(0, len(pool), (batch_size,), generator=gen)
    rows.append(
        {"what": "NAE pool draw", "seconds": median_seconds(lambda: pool[pick].clone(), args.repeats)}
    )

    shipped = next(
        r["seconds"] for r in rows if r.get("preset") == card.preset and r.get("layout") == "channels-last"
    )
    for r in rows:
        r["ratio_to_shipped_step"] = r["seconds"] / shipped
    result = {
        **provenance([data.source_id], [args.model, card.classifier_id]),
        "batch_size": batch_size,
        "image_shape": list(data.x_train.shape[1:]),
        "torch_threads": torch.get_num_threads(),
        "shipped_preset": card.preset,
        "nae": {"steps": scheme.nae.steps, "lr": scheme.nae.lr, "margin": scheme.nae.margin},
        "rows": rows,
    }
    path = RESULTS_DIR / "benchmark" / f"ric-training-step-{args.model}.json"
    write_result(path, result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""Training-step time of zoo classifier configurations on this machine (why a card was scaled).

    python scripts/benchmark_training_step.py cifar10-convmixer-256-8 cifar10-convmixer cifar10-vit

One AdamW step (forward, backward, update) on a batch of random 32x32 images, in each card's
memory layout, after a warm-up step; the median of ``--repeats`` steps, converted to minutes
per CIFAR-10 epoch. All configurations run in one process, one after the other, so their
ratios are comparable. Writes results/benchmark/training-step.json.
"""

from __future__ import annotations

import argparse

import torch

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.classifiers.architectures import build_classifier
from noiseveil.classifiers.training import make_optimizer
from noiseveil.timing import median_seconds
from noiseveil.zoo import CLASSIFIERS, ZooError

TRAIN_IMAGES = 50_000


def step_seconds(model_id: str, repeats: int) -> dict:
    card = CLASSIFIERS.get(model_id)
    if card is None:
        raise ZooError(f"unknown classifier {model_id!r}; known: {', '.join(CLASSIFIERS)}")
    torch.manual_seed(0)
    model = build_classifier(card.arch, **card.config)
    x = torch.rand(card.train.batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (len(x),))
    if card.train.channels_last:
        model, x = (
            model.to(memory_format=torch.channels_last),
            x.contiguous(memory_format=torch.channels_last),
        )
    opt = make_optimizer(model, card.train)

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = median_seconds(step, repeats)
    steps_per_epoch = -(-TRAIN_IMAGES // card.train.batch_size)
    return {
        "model_id": model_id,
        "config": card.config,
        "batch_size": card.train.batch_size,
        "channels_last": card.train.channels_last,
        "parameters": sum(p.numel() for p in model.parameters()),
        "step_seconds_median": seconds,
        "minutes_per_epoch": seconds * steps_per_epoch / 60,
        "epochs_in_card": card.train.epochs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = [step_seconds(m, args.repeats) for m in args.models]
    for r in rows:
        print(
            f"{r['model_id']}: {r['step_seconds_median']:.3f} s/step, {r['minutes_per_epoch']:.1f} min/epoch"
        )
    fastest = min(r["step_seconds_median"] for r in rows)
    for r in rows:
        r["ratio_to_fastest"] = r["step_seconds_median"] / fastest
    write_result(
        RESULTS_DIR / "benchmark" / "training-step.json",
        {**provenance([], args.models), "train_images": TRAIN_IMAGES, "runs": rows},
    )


if __name__ == "__main__":
    main()

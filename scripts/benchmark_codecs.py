"""Which lossless codec RIC's lossless preset uses, by measurement.

    python scripts/benchmark_codecs.py --images 500

On the bundle's test images of each dataset: bits per sample (mean, 99th percentile, max)
and encode / decode milliseconds per image of WebP lossless (Pillow, the settings and header
stripping `noiseveil.io.codecs` uses), PNG (Pillow, zlib level 9) and JPEG XL (imagecodecs,
effort 7, lossless; skipped if `pip install imagecodecs` has not been run). Every codec's
round trip is checked to be exact. Writes results/benchmark/lossless-codecs.json.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import numpy as np
from PIL import Image

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.data import fixed_subset, load_dataset
from noiseveil.io.codecs import lossless_decode, lossless_encode
from noiseveil.timing import timed

Codec = tuple[Callable[[np.ndarray], bytes], Callable[[bytes, tuple], np.ndarray]]


def _png_encode(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


def _png_decode(data: bytes, shape: tuple) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data))).reshape(shape)


def codecs() -> dict[str, Codec]:
    out: dict[str, Codec] = {
        "webp-lossless (pillow, shipped)": (lossless_encode, lossless_decode),
        "png (pillow, level 9)": (_png_encode, _png_decode),
    }
    try:
        import imagecodecs

        out["jpeg-xl lossless (imagecodecs, effort 7)"] = (
            lambda x: imagecodecs.jpegxl_encode(x[..., 0] if x.shape[2] == 1 else x, lossless=True, effort=7),
            lambda d, shape: np.asarray(imagecodecs.jpegxl_decode(d)).reshape(shape),
        )
    except ImportError:
        print("imagecodecs not installed: JPEG XL skipped (pip install imagecodecs)")
    return out


def measure(images: np.ndarray, encode, decode) -> dict[str, float]:
    blobs, t_enc = timed(lambda: [encode(x) for x in images])
    back, t_dec = timed(lambda: [decode(b, x.shape) for b, x in zip(blobs, images, strict=True)])
    if not all(np.array_equal(b, x) for b, x in zip(back, images, strict=True)):
        raise SystemExit("a codec's round trip was not exact")
    bits = np.array([8 * len(b) / x.size for b, x in zip(blobs, images, strict=True)])
    return {
        "bits_per_sample_mean": float(bits.mean()),
        "bits_per_sample_p99": float(np.percentile(bits, 99)),
        "bits_per_sample_max": float(bits.max()),
        "encode_ms_per_image": 1e3 * t_enc / len(images),
        "decode_ms_per_image": 1e3 * t_dec / len(images),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    table, sources = {}, []
    for name in ("cifar10", "lfw", "mnist"):
        data = load_dataset(name)
        sources.append(data.source_id)
        images = data.x_test[fixed_subset(len(data.x_test), args.images)]
        table[name] = {codec: measure(images, *fns) for codec, fns in codecs().items()}
        for codec, m in table[name].items():
            print(
                f"{name:8s} {codec:42s} {m['bits_per_sample_mean']:.2f} bits/sample (max "
                f"{m['bits_per_sample_max']:.2f}), encode {m['encode_ms_per_image']:.2f} ms, "
                f"decode {m['decode_ms_per_image']:.3f} ms"
            )
    out = RESULTS_DIR / "benchmark" / "lossless-codecs.json"
    write_result(out, {**provenance(sources, []), "images_per_dataset": args.images, "codecs": table})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""What lossless RIC costs on photos, against the classifier's own forward pass (issue 23).

    python scripts/benchmark_photos.py            # -> results/benchmark/photos.json

Photos: scikit-image's coffee (400x600) and retina (1411x1411) at their native sizes, and
coffee upsampled with Lanczos to 3, 6 and 12 megapixels (no multi-megapixel photo ships with
an installed package; an upsampled photo is smoother than a camera's, so it compresses
better than a real 12 MP photo would). ``ric-imagenet`` on ``imagenet-squeezenet``, both
cores, one run for each size above 3 MP, the median of 3 below. For each photo:

- the floor: one plain forward pass of the card's classifier (preprocessing included);
- encryption (``Scheme.encrypt_each``: compression, sealing, the attack and the self-check
  that decrypts the written bytes), seconds per image and per megapixel, and the classifier's
  passes per image: forward-backward (the attack's steps) and forward only (label checks);
- where the time goes, by stage (compression, sealing, attack, self-check);
- decryption megapixels per second through the API (``decrypt_images`` of parsed bytes) and
  through files (``decrypt_files``: read, verify, decrypt, write the PNG), and for a folder of
  four 12 MP photos, where each is written while the next is decrypted;
- peak resident memory of a fresh ``noiseveil encrypt`` / ``decrypt`` of the 12 MP photo;
- the encoders the code chose by this measurement: Pillow's PNG at zlib levels 0, 1 and 6
  against noiseveil's strip-parallel PNG encoder (stored; Up filter with ISA-L levels 1-3),
  for ciphertexts and recovered photos, and the WebP lossless effort.
"""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import noiseveil.schemes.base as base  # noqa: E402
import noiseveil.schemes.ric_lossless as lossless  # noqa: E402
from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result  # noqa: E402
from noiseveil.crypto.keys import SecretKey  # noqa: E402
from noiseveil.data import load_photos, to_tensor  # noqa: E402
from noiseveil.io import png_encoder  # noqa: E402
from noiseveil.io.codecs import lossless_encode  # noqa: E402
from noiseveil.io.png import ciphertext_from_bytes, ciphertext_to_bytes, write_ciphertext  # noqa: E402
from noiseveil.pipeline import decrypt_files, plan  # noqa: E402
from noiseveil.zoo import load_scheme  # noqa: E402

MODEL = "ric-imagenet"
# Runs argv[1:] and prints its exit code, stderr and peak RSS (kB) as JSON (see peak_memory).
LAUNCHER = (
    "import json, os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stderr=subprocess.PIPE, text=True)\n"
    "err = p.stderr.read()\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(json.dumps({'exit_code': os.waitstatus_to_exitcode(status), 'stderr': err,"
    " 'maxrss_kb': usage.ru_maxrss}))"
)


class Stages:
    """Seconds spent in named functions, wrapped where they are looked up (restored after)."""

    def __init__(self, targets: list[tuple[Any, str, str]]) -> None:
        self.targets, self.seconds = targets, defaultdict(float)
        self.saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> Stages:
        for owner, name, label in self.targets:
            inner = getattr(owner, name)
            self.saved.append((owner, name, owner.__dict__[name]))
            setattr(owner, name, self._timed(inner, label))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in self.saved:
            setattr(owner, name, original)

    def _timed(self, inner: Callable, label: str) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - start

        return timed


STAGES = [
    (lossless, "pack_image", "compression (WebP lossless)"),
    (lossless, "bytes_to_digits", "sealed bytes to digits"),
    (lossless, "seal_payload", "sealing (ChaCha20-Poly1305)"),
    (lossless, "discrete_nae", "attack (NAE)"),
    (base.Scheme, "check_ciphertexts", "self-check (serialise, parse, decrypt, label)"),
]


class PassCounter(torch.nn.Module):
    """The classifier, counting its forward passes with and without autograd."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.with_grad, self.without_grad = inner, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.with_grad += 1
        else:
            self.without_grad += 1
        return self.inner(x)


def photos() -> dict[str, np.ndarray]:
    named = dict(load_photos())
    coffee = named["coffee"]
    out = {"coffee (native)": coffee, "retina (native)": named["retina"]}
    for mp, (w, h) in {3: (2000, 1500), 6: (2828, 2121), 12: (4000, 3000)}.items():
        out[f"coffee upsampled to {mp} MP"] = np.asarray(
            Image.fromarray(coffee).resize((w, h), Image.LANCZOS)
        )
    return out


def median_seconds(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(scheme, counter: PassCounter, name: str, image: np.ndarray, key: SecretKey, work: Path) -> dict:
    runs = 1 if image.shape[0] * image.shape[1] > 3e6 else 3
    x = to_tensor(image[None])
    megapixels = image.shape[0] * image.shape[1] / 1e6
    with torch.no_grad():
        counter.inner(x)  # warm-up
        floor, _ = median_seconds(lambda: counter.inner(x), 3)
    counter.with_grad = counter.without_grad = 0
    with Stages(STAGES) as stages:
        encrypt, (ct,) = median_seconds(lambda: scheme.encrypt_each(x, key), runs)
    body = ciphertext_to_bytes(ct)
    parsed = ciphertext_from_bytes(body)
    decrypt_api, back = median_seconds(lambda: scheme.decrypt_images([parsed], key), 3)
    assert np.array_equal(back[0], image), name

    written = Path(tempfile.mkdtemp(dir=work))
    write_ciphertext(written / "c" / "photo.png", ct)

    def through_files() -> None:  # read, verify, decrypt, write the photo's PNG (a new folder each run)
        target = Path(tempfile.mkdtemp(dir=work))
        decrypt_files(lambda _m: scheme, key, plan(written / "c", target / "r"), progress=False)

    decrypt_files_s, _ = median_seconds(through_files, 3)
    return {
        "photo": name,
        "shape": list(image.shape),
        "megapixels": megapixels,
        "runs": runs,
        "forward_seconds": floor,
        "encrypt_seconds": encrypt,
        "encrypt_seconds_per_megapixel": encrypt / megapixels,
        "encrypt_over_forward": encrypt / floor,
        "forward_backward_passes": counter.with_grad / runs,
        "forward_only_passes": counter.without_grad / runs,
        "stage_seconds": {k: v / runs for k, v in stages.seconds.items()},
        "decrypt_megapixels_per_second_api": megapixels / decrypt_api,
        "decrypt_megapixels_per_second_files": megapixels / decrypt_files_s,
        "ciphertext_bytes": len(body),
        "first_try_failed": int(scheme.stats["first_try_failed"]),
    }


def peak_memory(image: np.ndarray, work: Path) -> dict:
    """Peak RSS of fresh CLI processes encrypting and decrypting one 12 MP photo."""
    (work / "photo").mkdir()
    Image.fromarray(image).save(work / "photo" / "photo.jpg", quality=92)
    SecretKey.generate().save(work / "k.key")
    out = {}
    for action, args in (
        ("encrypt", ["encrypt", str(work / "photo"), "-o", str(work / "c"), "-m", MODEL]),
        ("decrypt", ["decrypt", str(work / "c"), "-o", str(work / "r")]),
    ):
        command = [sys.executable, "-m", "noiseveil.app.cli", *args, "-k", str(work / "k.key"), "--quiet"]
        # Through a small launcher: Linux carries a process's peak RSS across fork and exec, so
        # a child forked from this (large) process would report this process's peak as its own.
        launcher = [sys.executable, "-c", LAUNCHER, *command]
        proc = subprocess.run(launcher, capture_output=True, text=True)
        usage = json.loads(proc.stdout.strip().splitlines()[-1])
        stderr = usage["stderr"]
        proc.returncode = usage["exit_code"]
        out[action] = {
            "exit_code": proc.returncode,
            "summary": stderr.strip().splitlines()[-1],
            "peak_rss_megabytes": usage["maxrss_kb"] / 1024,
        }
    return out


def encoder_settings(image: np.ndarray, cipher: np.ndarray) -> dict:
    """Sizes and times of the encoders the code chose among: Pillow's one-thread PNG at zlib
    levels 0, 1 and 6 against noiseveil's strip-parallel PNG (stored, or the Up filter with
    ISA-L levels 1-3), and WebP lossless efforts."""

    def timed(encode: Callable[..., bytes], arg: Any, name: str, chosen: bool) -> dict:
        start = time.perf_counter()
        size = len(encode(arg))
        return {"encoder": name, "seconds": time.perf_counter() - start, "bytes": size, "chosen": chosen}

    def pillow(pixels: np.ndarray, level: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG", compress_level=level)
        return buf.getvalue()

    def png_choices(pixels: np.ndarray, chosen: png_encoder.Deflate) -> list[dict]:
        ours = [png_encoder.STORED] + [
            png_encoder.Deflate(f"Up filter, ISA-L level {n}", 2, n) for n in (1, 2, 3)
        ]
        rows = [
            timed(lambda level: pillow(pixels, level), level, f"Pillow, zlib level {level}", False)
            for level in (0, 1, 6)
        ]
        return rows + [
            timed(lambda d: png_encoder.encode_png(pixels, None, d), d, f"noiseveil, {d.name}", d == chosen)
            for d in ours
        ]

    def timed_webp(fast: bool) -> dict:
        start = time.perf_counter()
        data = lossless_encode(image, fast=fast)
        return {
            "fast": fast,
            "seconds": time.perf_counter() - start,
            "bits_per_sample": 8 * len(data) / image.size,
        }

    return {
        "photo_shape": list(image.shape),
        "png_ciphertext": png_choices(cipher, png_encoder.STORED),
        "png_recovered_photo": png_choices(image, png_encoder.PHOTO),
        "webp_lossless": [timed_webp(fast) for fast in (True, False)],
    }


def folder_of_photos(scheme, ct, key: SecretKey, work: Path, copies: int = 4) -> dict:
    """A folder of ``copies`` photos through files (each written while the next is decrypted)
    against the API decrypting as many parsed ciphertexts."""
    folder = Path(tempfile.mkdtemp(dir=work)) / "c"
    for i in range(copies):
        write_ciphertext(folder / f"photo-{i}.png", ct)
    parsed = [ciphertext_from_bytes(ciphertext_to_bytes(ct)) for _ in range(copies)]
    api, _ = median_seconds(lambda: scheme.decrypt_images(parsed, key), 3)

    def through_files() -> None:
        target = Path(tempfile.mkdtemp(dir=work))
        report = decrypt_files(lambda _m: scheme, key, plan(folder, target / "r"), progress=False)
        assert report.ok and report.done == copies, report.summary()

    files, _ = median_seconds(through_files, 3)
    megapixels = copies * ct.pixels.shape[0] * ct.pixels.shape[1] / 1e6
    return {
        "photos": copies,
        "shape": list(ct.pixels.shape),
        "decrypt_megapixels_per_second_api": megapixels / api,
        "decrypt_megapixels_per_second_files": megapixels / files,
    }


def main() -> int:
    torch.set_num_threads(2)
    prov = provenance(["scikit-image sample photos coffee, retina (upsampled with Lanczos)"], [MODEL])
    scheme = load_scheme(MODEL)
    counter = PassCounter(scheme.cloud_classifier())
    scheme.classifier = counter
    key = SecretKey.generate()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = photos()
        for name, image in images.items():
            print(f"benchmark: {name} {image.shape[1]}x{image.shape[0]} ...", file=sys.stderr, flush=True)
            rows.append(measure(scheme, counter, name, image, key, work))
        big = images["coffee upsampled to 12 MP"]
        print("benchmark: peak memory of fresh processes, 12 MP ...", file=sys.stderr, flush=True)
        memory = peak_memory(big, work)
        (ct,) = scheme.encrypt(to_tensor(big[None]), key)
        print("benchmark: a folder of 12 MP photos, encoders ...", file=sys.stderr, flush=True)
        folder = folder_of_photos(scheme, ct, key, work)
        settings = encoder_settings(big, ct.pixels)
    result = {
        **prov,
        "scheme_model": MODEL,
        "photos": rows,
        "folder_of_12mp_photos": folder,
        "peak_memory_12mp": memory,
        "encoders": settings,
    }
    out = write_result(RESULTS_DIR / "benchmark" / "photos.json", result)
    for r in rows:
        print(
            f"{r['photo']:28s} {r['megapixels']:6.2f} MP  encrypt {r['encrypt_seconds']:6.2f} s "
            f"({r['encrypt_over_forward']:5.0f}x a forward, {r['forward_backward_passes']:.0f} fwd-bwd)  "
            f"decrypt {r['decrypt_megapixels_per_second_api']:5.1f} MP/s API, "
            f"{r['decrypt_megapixels_per_second_files']:5.1f} MP/s files"
        )
    print(
        f"a folder of {folder['photos']} 12 MP photos: decrypt "
        f"{folder['decrypt_megapixels_per_second_api']:.1f} MP/s API, "
        f"{folder['decrypt_megapixels_per_second_files']:.1f} MP/s files"
    )
    print(
        f"peak RSS 12 MP: encrypt {memory['encrypt']['peak_rss_megabytes']:.0f} MB, decrypt "
        f"{memory['decrypt']['peak_rss_megabytes']:.0f} MB"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Evaluation of a scheme on a dataset's test images: the figures of RIC's Tables 1 and 2.

ACC_p / ACC_e: the cloud classifier's accuracy on plaintexts / ciphertexts (ground truth
labels); ADP (eq. 14); label agreement C(x'_q) = C(x); recovery PSNR / SSIM against the
plaintext on 8-bit images; SSIM between ciphertext and plaintext (what the cloud sees).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from noiseveil.classifiers.training import predict
from noiseveil.crypto.keys import Key
from noiseveil.data import ImageDataset, fixed_subset, to_tensor, to_uint8
from noiseveil.metrics import accuracy_drop_proportion, describe, psnr, ssim
from noiseveil.progress import progress_bar
from noiseveil.schemes.base import RECOVERY_FIELD, Encrypted, EncryptionError, Scheme


@dataclass
class Evaluation:
    plain: np.ndarray  # uint8 (N, H, W, C)
    cipher: np.ndarray
    recovered: np.ndarray
    labels: np.ndarray | None  # None for images without ground truth (cross-dataset, photos)
    pred_plain: np.ndarray
    pred_cipher: np.ndarray
    encrypt_seconds: float
    decrypt_seconds: float
    first_try_failed: int = 0
    lossy: int = 0  # ciphertexts whose header promised a lossy recovery
    failed: int = 0  # images encryption refused (its self-check failed); not in the figures

    def summary(self) -> dict:
        rec_psnr, rec_ssim = psnr(self.recovered, self.plain), ssim(self.recovered, self.plain)
        leak_ssim = ssim(self.cipher, self.plain)
        n = len(self.plain)
        accuracy = {}
        if self.labels is not None:
            acc_p = float((self.pred_plain == self.labels).mean())
            acc_e = float((self.pred_cipher == self.labels).mean())
            accuracy = {
                "acc_plain": acc_p,
                "acc_encrypted": acc_e,
                "adp_percent": accuracy_drop_proportion(acc_p, acc_e),
            }
        bit_exact = (self.recovered == self.plain).reshape(n, -1).all(1)
        return {
            "images": n,
            "encryption_failures": self.failed,
            "bit_exact_share": float(bit_exact.mean()),
            "lossy_share": self.lossy / n,
            **accuracy,
            "label_agreement": float((self.pred_cipher == self.pred_plain).mean()),
            "recovery_psnr_db": describe(rec_psnr),
            "recovery_ssim": describe(rec_ssim),
            "ssim_cipher_vs_plain": describe(leak_ssim),
            "first_try_label_changes": self.first_try_failed,  # re-encrypted with a fresh NAE
            "encrypt_images_per_second": n / self.encrypt_seconds,
            "decrypt_images_per_second": n / self.decrypt_seconds,
        }


def evaluate_scheme(
    scheme: Scheme, data: ImageDataset, n: int, seed: int = 0, batch_size: int = 64, progress: bool = False
) -> tuple[Evaluation, np.ndarray]:
    """Encrypt, classify and decrypt a fixed subset of ``n`` test images (fresh key unless bound).

    The subset is ``fixed_subset(len(test), n, seed)``: the same images on every run.
    Returns the evaluation and the subset's indices.
    """
    idx = fixed_subset(len(data.x_test), n, seed)
    return evaluate_images(scheme, data.x_test[idx], data.y_test[idx], batch_size, progress=progress), idx


def evaluate_images(
    scheme: Scheme,
    plain: np.ndarray,
    labels: np.ndarray | None,
    batch_size: int = 64,
    checked: bool = True,
    progress: bool = False,
) -> Evaluation:
    """Encrypt, classify and decrypt uint8 images (N, H, W, C) of the scheme's shape.

    ``checked=False`` measures the scheme's algorithm alone (no self-check, no refusals): for
    research variants such as the paper's ablations, whose label changes are the measurement."""
    key = scheme.demo_key()
    # RIC re-encrypts the rare image whose ciphertext changes label; count those (first try).
    failed_before = scheme.encryption_stats()["first_try_failed"]
    classifier = scheme.cloud_classifier()
    cipher, recovered, kept = [], [], []
    enc_s = dec_s = 0.0
    lossy = 0
    bar = progress_bar(total=len(plain), desc=f"evaluate {scheme.model_id}", unit="img", disable=not progress)
    for start in range(0, len(plain), batch_size):
        bar.update(min(batch_size, len(plain) - start))
        x = to_tensor(plain[start : start + batch_size])
        t0 = time.perf_counter()
        results = scheme.encrypt_each(x, key) if checked else scheme.encrypt_unchecked(x, key)
        t1 = time.perf_counter()
        encrypted = Encrypted.of(results, offset=start)
        cts, kept = encrypted.ciphertexts, kept + encrypted.kept
        lossy += sum(ct.fields.get(RECOVERY_FIELD) == "lossy" for ct in cts)
        if not cts:
            continue
        rec = scheme.decrypt(cts, key)
        t2 = time.perf_counter()
        enc_s, dec_s = enc_s + t1 - t0, dec_s + t2 - t1
        cipher.append(np.stack([ct.pixels for ct in cts]))
        recovered.append(to_uint8(rec))
    bar.close()
    failed = len(plain) - len(kept)
    plain, labels = plain[kept], None if labels is None else labels[kept]
    if not len(plain):
        raise EncryptionError("encryption refused every image")
    cipher_arr = np.concatenate(cipher)
    with torch.no_grad():
        pred_plain = predict(classifier, to_tensor(plain)).numpy()
        pred_cipher = predict(classifier, to_tensor(cipher_arr)).numpy()
    first_try = scheme.encryption_stats()["first_try_failed"] - failed_before
    return Evaluation(
        plain,
        cipher_arr,
        np.concatenate(recovered),
        labels,
        pred_plain,
        pred_cipher,
        enc_s,
        dec_s,
        first_try,
        lossy,
        failed,
    )


def evaluate_photos(
    scheme: Scheme, photos: Sequence[tuple[str, np.ndarray]], key: Key | None = None, progress: bool = False
) -> dict:
    """Encrypt, classify and decrypt photos of any sizes one at a time, as the file pipeline
    does: each ciphertext goes through its PNG bytes, is classified by the cloud model and
    decrypted from those bytes. Photos have no ground truth: label agreement, not accuracy.

    Returns a summary (as :meth:`Evaluation.summary`, plus megapixels per second and the
    observer's low-pass and local-contrast checks) and one row per photo."""
    from noiseveil.attacks.filters import privacy_checks_each
    from noiseveil.io.png import ciphertext_from_bytes, ciphertext_to_bytes

    key = key or scheme.demo_key()
    classifier = scheme.cloud_classifier()
    rows, cipher, plain = [], [], []
    enc_s = dec_s = 0.0
    for name, image in progress_bar(
        photos, desc=f"evaluate {scheme.model_id}", unit="photo", disable=not progress
    ):
        x = to_tensor(image[None])
        t0 = time.perf_counter()
        (result,) = scheme.encrypt_each(x, key)
        t1 = time.perf_counter()
        if isinstance(result, EncryptionError):
            rows.append({"photo": name, "shape": list(image.shape), "refused": str(result)})
            continue
        ct = ciphertext_from_bytes(ciphertext_to_bytes(result))
        t2 = time.perf_counter()
        (back,) = scheme.decrypt_images([ct], key)
        t3 = time.perf_counter()
        enc_s, dec_s = enc_s + t1 - t0, dec_s + t3 - t2
        with torch.no_grad():
            labels = predict(classifier, torch.cat([x, to_tensor(ct.pixels[None])])).tolist()
        rows.append(
            {
                "photo": name,
                "shape": list(image.shape),
                "label_plain": labels[0],
                "label_cipher": labels[1],
                "bit_exact": bool(np.array_equal(back, image)),
                "recovery": ct.fields.get(RECOVERY_FIELD, "exact"),
                "recovery_psnr_db": float(psnr(back[None], image[None])[0]),
                "recovery_ssim": float(ssim(back[None], image[None])[0]),
                "ssim_cipher_vs_plain": float(ssim(ct.pixels[None], image[None])[0]),
                "encrypt_seconds": t1 - t0,
                "decrypt_seconds": t3 - t2,
            }
        )
        cipher.append(ct.pixels)
        plain.append(image)
    done = [r for r in rows if "refused" not in r]
    if not done:
        raise EncryptionError("encryption refused every photo")
    megapixels = sum(r["shape"][0] * r["shape"][1] for r in done) / 1e6
    summary = {
        "images": len(done),
        "encryption_failures": len(rows) - len(done),
        "label_agreement": float(np.mean([r["label_plain"] == r["label_cipher"] for r in done])),
        "bit_exact_share": float(np.mean([r["bit_exact"] for r in done])),
        "lossy_share": float(np.mean([r["recovery"] == "lossy" for r in done])),
        "recovery_psnr_db": describe([r["recovery_psnr_db"] for r in done]),
        "recovery_ssim": describe([r["recovery_ssim"] for r in done]),
        "ssim_cipher_vs_plain": describe([r["ssim_cipher_vs_plain"] for r in done]),
        "megapixels": megapixels,
        "encrypt_seconds_per_megapixel": enc_s / megapixels,
        "decrypt_megapixels_per_second": megapixels / dec_s,
        "privacy": privacy_checks_each(cipher, plain) if len(plain) > 1 else None,
    }
    return {"summary": summary, "per_photo": rows}

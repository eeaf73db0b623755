"""End to end on real test images with the shipped models, through the real CLI.

For each shipped scheme model (RIC, EtC, AVP, TransNet): 24 fixed test images (AVP: 6) are
written as PNG files, encrypted with ``noiseveil encrypt``, classified as ciphertexts by the
cloud classifier (RIC's unmodified plaintext model, EtC's model trained on EtC images,
TransNet's ψ the protection was trained with), and decrypted in a *separate process with
another thread count* than the one that made the reference decryption. What a scheme cannot
do is checked as its capabilities state it: a keyless scheme takes no key, a scheme that does
not recover refuses to decrypt, in one line per file. Thresholds (see ``MIN_PSNR_DB``) sit
below the figures measured by ``noiseveil report ric`` (results/ric/) so that a regression,
not noise, fails them.

The checks live here and three test files run them (pytest-xdist runs a file per worker, and
AVP's encryption, an optimisation of hundreds of steps per image, costs as much as every other
model together): tests/test_end_to_end.py for the dataset models but AVP's, and
tests/test_end_to_end_avp.py and tests/test_end_to_end_avp_half.py for half of AVP's each.
Each file makes its ``encrypted`` fixture with :func:`encrypted_fixture`.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import OTHER_THREADS, WORKER_THREADS, run_cli
from PIL import Image, PngImagePlugin

from noiseveil.classifiers.training import predict
from noiseveil.crypto.keys import load_key
from noiseveil.data import PHOTOS, fixed_subset, load_dataset, read_image, to_tensor, to_uint8
from noiseveil.io.png import read_ciphertext, write_image
from noiseveil.metrics import psnr, ssim
from noiseveil.schemes.base import Capabilities
from noiseveil.zoo import load_scheme, read_manifest, shipped_schemes

# Recovery: RIC's shipped models are held to the fidelity target of issue 3 (46 dB, a dB of
# slack for 24 images); EtC decryption is exact, so any loss at all would be a bug.
MIN_PSNR_DB = {"ric": 45.0, "ric-lossless": 99.0, "etc": 99.0, "avp": 18.0}  # recovering schemes
# The ciphertext must not look like the image (SSIM of 1 = identical, ~0 = unrelated). RIC's
# target is 0.05; EtC keeps each block's content, only moved and turned (see its report).
# TransNet's h_θ at α = 0.005: SSIM about -0.06 (PSNR about 7 dB) on fixed test images.
MAX_CIPHER_SSIM = {"ric": 0.05, "ric-lossless": 0.05, "etc": 0.15, "avp": 0.15, "transnet": 0.05}
# Fixed test images per model; AVP's encryption is an 8-bit optimisation of hundreds of steps
# per image (LFW's K = 800: tens of seconds a face on a busy core), so its models get fewer:
# every one of them must keep its label, and the AVP report (results/avp/) measures the rates
# on more images.
N_IMAGES = {"avp": 4}
DEFAULT_IMAGES = 24

# The dataset models: these checks stack a class-folder tree of one image size. Models for
# photos of any size go through the same commands on photos of several sizes in
# tests/test_own_classifier.py.
MODELS = [m for m in shipped_schemes() if read_manifest()[m]["dataset"] != PHOTOS]
AVP_MODELS = [m for m in MODELS if read_manifest()[m]["scheme"] == "avp"]


def cli(*args: str, threads: int = WORKER_THREADS) -> subprocess.CompletedProcess:
    return run_cli(list(args), threads=threads, timeout=600)


def key_option(key: Path | None) -> list[str]:
    """``-k KEY`` for a keyed scheme; nothing for a keyless one (which refuses a key)."""
    return [] if key is None else ["-k", str(key)]


def capability(model_id: str) -> Capabilities:
    return load_scheme(model_id).capabilities


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def encrypted_fixture(models: list[str]):
    """The module fixture ``encrypted`` of a test file, over ``models``."""
    return pytest.fixture(scope="module", params=models, name="encrypted")(_encrypted)


def _encrypted(request, tmp_path_factory):
    """Plain PNGs, the key and the ciphertext folder for one shipped model."""
    model_id = request.param
    work = tmp_path_factory.mktemp(model_id)
    data = load_dataset(read_manifest()[model_id]["dataset"])
    idx = fixed_subset(len(data.x_test), N_IMAGES.get(load_scheme(model_id).name, DEFAULT_IMAGES), seed=1)
    plain_dir = work / "plain"
    for i in idx:  # nested folders: output must mirror them
        write_image(plain_dir / data.classes[data.y_test[i]] / f"{i:05d}.png", data.x_test[i])
    key = None
    if capability(model_id).key is not None:
        key = work / "k.key"
        # The model's PUBLIC demo key: a fresh one (RIC), the key its cloud model knows (EtC),
        # or the generator it ships (AVP, whose own keys take minutes to train).
        assert cli("keygen", str(key), "--model", model_id, "--demo").returncode == 0
    before = tree_digest(plain_dir)
    output = ["-o", str(work / "cipher"), "-m", model_id]
    proc = cli("encrypt", str(plain_dir), *output, *key_option(key), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert tree_digest(plain_dir) == before, "encryption modified its input"
    return model_id, work, plain_dir, work / "cipher", key


def test_ciphertexts_mirror_the_tree_and_are_plain_pngs(encrypted):
    _, _, plain_dir, cipher_dir, _ = encrypted
    plain = sorted(p.relative_to(plain_dir) for p in plain_dir.rglob("*.png"))
    cipher = sorted(p.relative_to(cipher_dir) for p in cipher_dir.rglob("*.png"))
    assert plain == cipher
    with Image.open(cipher_dir / cipher[0]) as im:
        assert im.format == "PNG" and im.mode in ("L", "RGB")


def test_cloud_classifier_labels_the_ciphertexts(encrypted):
    """RIC: the plaintext model gives every ciphertext its plaintext's label. EtC: the model
    trained on EtC images classifies the ciphertexts about as well as its test accuracy."""
    model_id, _, plain_dir, cipher_dir, _ = encrypted
    scheme = load_scheme(model_id)
    files = sorted(p.relative_to(plain_dir) for p in plain_dir.rglob("*.png"))
    plain = to_tensor(np.stack([read_image(plain_dir / f) for f in files]))
    cipher = to_tensor(np.stack([read_image(cipher_dir / f) for f in files]))
    classifier = scheme.cloud_classifier()
    if scheme.keeps_plaintext_label:
        agreement = (predict(classifier, plain) == predict(classifier, cipher)).float().mean().item()
        assert agreement == 1.0, f"{model_id}: label agreement {agreement:.3f}"
    else:
        classes = load_dataset(read_manifest()[model_id]["dataset"]).classes
        truth = torch.tensor([classes.index(f.parts[0]) for f in files])
        acc = (predict(classifier, cipher) == truth).float().mean().item()
        # 24 fixed images: the slack covers subset noise, not a broken key, model or file path.
        assert acc >= read_manifest()[model_id]["test_accuracy"] - 0.25, f"{model_id}: accuracy {acc:.3f}"


def test_ciphertext_hides_the_image(encrypted):
    model_id, _, plain_dir, cipher_dir, _ = encrypted
    files = sorted(p.relative_to(plain_dir) for p in plain_dir.rglob("*.png"))
    plain = np.stack([read_image(plain_dir / f) for f in files])
    cipher = np.stack([read_image(cipher_dir / f) for f in files])
    assert ssim(cipher, plain).mean() < MAX_CIPHER_SSIM[load_scheme(model_id).name]


def test_a_scheme_that_does_not_recover_refuses_to_decrypt(encrypted):
    model_id, work, _, cipher_dir, key = encrypted
    if capability(model_id).recovers:
        pytest.skip("the scheme recovers: see the decryption tests")
    proc = cli("decrypt", str(cipher_dir), "-o", str(work / "back"), *key_option(key), "--quiet")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("not recoverable") == len(list(cipher_dir.rglob("*.png"))), proc.stderr
    assert not (work / "back").exists()
    refused = cli("keygen", str(work / "k.key"), "--model", model_id)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert not (work / "k.key").exists()


def test_decrypt_in_another_process_and_thread_count_is_identical(encrypted):
    model_id, work, plain_dir, cipher_dir, key = encrypted
    if not capability(model_id).recovers:
        pytest.skip("the scheme does not recover: decryption is refused (test above)")
    files = sorted(p.relative_to(cipher_dir) for p in cipher_dir.rglob("*.png"))
    out = work / "recovered-other-threads"  # another thread count than the encryption's
    proc = cli("decrypt", str(cipher_dir), "-o", str(out), "-k", str(key), "--quiet", threads=OTHER_THREADS)
    assert proc.returncode == 0, proc.stderr
    recovered = np.stack([read_image(out / f) for f in files])
    plain = np.stack([read_image(plain_dir / f) for f in files])
    assert psnr(recovered, plain).mean() > MIN_PSNR_DB[load_scheme(model_id).name]

    # Reference: this process, two threads, one batch.
    scheme = load_scheme(model_id)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        here = to_uint8(scheme.decrypt([read_ciphertext(cipher_dir / f) for f in files], load_key(key)))
    finally:
        torch.set_num_threads(previous)
    assert np.array_equal(here, recovered), "decryption differs across processes/threads"


def test_wrong_key_and_tampering_write_nothing(encrypted):
    model_id, work, _, cipher_dir, _ = encrypted
    if capability(model_id).key is None or not capability(model_id).recovers:
        pytest.skip("keyless and unauthenticated: no key to be wrong, nothing decrypts")
    other = work / "other.key"
    assert cli("keygen", str(other), "--model", model_id, "--steps", "2", "--quiet").returncode == 0
    proc = cli("decrypt", str(cipher_dir), "-o", str(work / "wrong"), "-k", str(other), "--quiet")
    assert proc.returncode == 1
    assert "wrong key" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((work / "wrong").rglob("*.png")) if (work / "wrong").exists() else True

    # Re-save one ciphertext with a scheme field changed (RIC: the nonce; EtC: the block size)
    # and one with a pixel changed.
    src = sorted(cipher_dir.rglob("*.png"))[0]
    tampered = work / "tampered"
    tampered.mkdir()
    ct = read_ciphertext(src)
    for name, change in (("field", "field"), ("pixel", "pixel")):
        with Image.open(src) as im:
            info = PngImagePlugin.PngInfo()
            field = sorted(k for k in im.text if k.startswith("noiseveil:f."))[-1]
            for k, v in im.text.items():
                if change == "field" and k == field:
                    v = ("0" if v[0] != "0" else "1") + v[1:]
                info.add_text(k, v)
            pixels = np.array(im)
        if change == "pixel":
            pixels.flat[0] ^= 1
        Image.fromarray(pixels).save(tampered / f"{name}.png", pnginfo=info)
    proc = cli("decrypt", str(tampered), "-o", str(work / "tampered-out"), "-k", str(encrypted[4]), "--quiet")
    assert proc.returncode == 1
    assert proc.stderr.count("authentication failed") == 2, proc.stderr
    assert not (work / "tampered-out").exists()
    assert ct.model_id == model_id


def test_bad_inputs_are_reported_and_the_rest_is_processed(encrypted):
    model_id, work, plain_dir, _, key = encrypted
    h, w, c = load_scheme(model_id).image_shape
    mixed = work / "mixed"
    good = sorted(plain_dir.rglob("*.png"))[:2]
    for g in good:
        write_image(mixed / g.name, read_image(g))
    (mixed / "notes.png").write_text("not an image")
    (mixed / "truncated.png").write_bytes(good[0].read_bytes()[:60])
    write_image(mixed / "wrong-size.png", np.zeros((h + 4, w, c), np.uint8))
    write_image(
        mixed / "wrong-channels.png",
        np.zeros((h, w, 4 - c if c == 1 else 1), np.uint8) if c == 3 else np.zeros((h, w, 3), np.uint8),
    )
    out = work / "mixed-out"
    write_image(out / good[1].name, np.zeros((h, w, c), np.uint8))  # an output that exists
    existing = (out / good[1].name).read_bytes()
    proc = cli("encrypt", str(mixed), "-o", str(out), *key_option(key), "-m", model_id, "--quiet")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 5, proc.stderr
    assert (out / good[0].name).exists()
    assert (out / good[1].name).read_bytes() == existing, "an existing output was overwritten"
    assert "1 of 6 files done, 5 failed" in proc.stderr


def test_unknown_model_id_in_ciphertext_is_one_line(encrypted):
    _, work, _, cipher_dir, key = encrypted
    src = sorted(cipher_dir.rglob("*.png"))[0]
    with Image.open(src) as im:
        info = PngImagePlugin.PngInfo()
        for k, v in im.text.items():
            info.add_text(k, "ric-nonexistent" if k == "noiseveil:model" else v)
        im.save(work / "unknown-model.png", pnginfo=info)
    proc = cli("decrypt", str(work / "unknown-model.png"), "-o", str(work / "u.png"), *key_option(key))
    assert proc.returncode == 1
    assert "ric-nonexistent" in proc.stderr and "Traceback" not in proc.stderr
    assert not (work / "u.png").exists()


def test_torchscript_classifier_from_the_cli(encrypted, tmp_path):
    """A TorchScript cloud model plugs in for encryption (it is the one the labels are kept
    for); decryption needs it no longer: the ciphertext carries all decryption needs."""
    model_id, _, plain_dir, _, key = encrypted
    scheme = load_scheme(model_id)
    if not scheme.keeps_plaintext_label:
        pytest.skip("only unmodified-classifier schemes take the user's plaintext classifier")
    scripted = tmp_path / "cloud.pt"
    torch.jit.script(scheme.cloud_classifier()).save(str(scripted))
    one = sorted(plain_dir.rglob("*.png"))[:2]  # two: a batch, at a fraction of AVP's cost
    src = tmp_path / "in"
    for f in one:
        write_image(src / f.name, read_image(f))
    proc = cli(
        "encrypt",
        str(src),
        "-o",
        str(tmp_path / "c"),
        "-k",
        str(key),
        "-m",
        model_id,
        "--classifier",
        str(scripted),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    classified = cli("classify", str(tmp_path / "c"), "--classifier", str(scripted), "--quiet")
    plain_labels = predict(scheme.cloud_classifier(), to_tensor(np.stack([read_image(f) for f in one])))
    got = {
        Path(line.split("\t")[0]).name: int(line.split("\t")[1]) for line in classified.stdout.splitlines()
    }
    assert got == {f.name: int(label) for f, label in zip(one, plain_labels, strict=True)}
    plain = np.stack([read_image(f) for f in one])
    # Format 2: decryption never re-runs the attack, so it needs no classifier at all ...
    proc = cli("decrypt", str(tmp_path / "c"), "-o", str(tmp_path / "r0"), "-k", str(key), "--quiet")
    assert proc.returncode == 0, proc.stderr
    without = np.stack([read_image(tmp_path / "r0" / f.name) for f in one])
    assert psnr(without, plain).mean() > MIN_PSNR_DB[scheme.name]
    # ... and giving it one changes nothing.
    proc = cli(
        "decrypt",
        str(tmp_path / "c"),
        "-o",
        str(tmp_path / "r"),
        "-k",
        str(key),
        "--classifier",
        str(scripted),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    recovered = np.stack([read_image(tmp_path / "r" / f.name) for f in one])
    assert np.array_equal(recovered, without)

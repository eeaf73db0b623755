"""Protecting the classifier a user already has, on the photos a user already has.

A user exports a network (TorchScript, ONNX, or an nn.Module in Python), adds it to their zoo
with its labels and input pipeline, and lossless RIC protects real photos at their native
sizes with it: fresh CLI processes, as a user runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image
from torch import nn

from noiseveil import zoo
from noiseveil.classifiers.preprocessing import PRESETS, PreprocessedClassifier, Preprocessing, resized_shape
from noiseveil.crypto.keys import SecretKey
from noiseveil.data import load_photos, read_image, to_tensor
from noiseveil.io.png import write_image
from noiseveil.schemes.ric_lossless import bytes_to_digits, digits_to_bytes

CLASSES = [f"class {i}" for i in range(10)]


@pytest.fixture(autouse=True, scope="module")
def _own_zoo(tmp_path_factory: pytest.TempPathFactory):
    """This file's models go to a zoo of its own (other test files in this process never see them)."""
    previous = os.environ["NOISEVEIL_WEIGHTS"]
    os.environ["NOISEVEIL_WEIGHTS"] = str(tmp_path_factory.mktemp("own-classifier-zoo"))
    yield
    os.environ["NOISEVEIL_WEIGHTS"] = previous


class SmallNet(nn.Module):
    """A small ImageNet-style CNN at 48x48 (random weights, fixed seed): fast on two cores."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(32, len(CLASSES)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


PIPELINE = ["--input-size", "48", "--resize", "56", "--mean", "0.485", "0.456", "0.406"]
PIPELINE += ["--std", "0.229", "0.224", "0.225"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same network as a TorchScript file and as an ONNX file (torch.onnx, dynamic batch)."""
    folder = tmp_path_factory.mktemp("exported")
    net = SmallNet().eval()
    example = torch.rand(2, 3, 48, 48)
    torch.jit.save(torch.jit.trace(net, example), str(folder / "net.pt"))
    torch.onnx.export(
        net,
        (example,),
        str(folder / "net.onnx"),
        dynamo=False,
        input_names=["x"],
        dynamic_axes={"x": {0: "batch"}},
    )
    (folder / "labels.txt").write_text("\n".join(CLASSES) + "\n")
    return {"torchscript": folder / "net.pt", "onnx": folder / "net.onnx", "labels": folder / "labels.txt"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real photos at their native sizes (colour and grey, PNG and JPEG) and a 32x32 crop."""
    folder = tmp_path_factory.mktemp("photos")
    wanted = {"chelsea": ".png", "camera": ".png", "grace_hopper": ".jpg"}
    for name, image in load_photos():
        if name in wanted:
            pil = Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)
            pil.save(folder / f"{name}{wanted[name]}", quality=90)
            if name == "chelsea":
                write_image(folder / "small.png", image[100:132, 200:232])
    return folder


def user_zoo() -> dict:
    manifest = Path(os.environ["NOISEVEIL_WEIGHTS"]) / "manifest.json"
    return json.loads(manifest.read_text()) if manifest.exists() else {}


def read_folder(folder: Path) -> dict[str, np.ndarray]:
    return {p.stem: read_image(p) for p in sorted(folder.iterdir()) if p.suffix in (".png", ".jpg")}


def labels_of(stdout: str) -> dict[str, int]:
    return {Path(line.split("\t")[0]).stem: int(line.split("\t")[1]) for line in stdout.splitlines()}


def test_an_onnx_and_a_torchscript_import_protect_photos_alike(exported, photos, tmp_path) -> None:
    """Both imports are lossless RIC models for photos of any size: ciphertexts at the photo's
    own size that the cloud's card labels as the plaintext, recovered bit for bit, and the
    ONNX and TorchScript cards give identical labels."""
    key = tmp_path / "k.key"
    SecretKey.generate().save(key)
    plain = read_folder(photos)
    labels = {}
    for fmt in ("torchscript", "onnx"):
        added = run_cli(
            [
                "model",
                "add",
                f"net-{fmt}",
                "--classifier",
                str(exported[fmt]),
                "--labels",
                str(exported["labels"]),
            ]
            + PIPELINE
            + ["--calibrate", str(photos)]
        )
        assert added.returncode == 0, added.stderr
        assert f"ric-net-{fmt}" in added.stdout and "measured on 4 sample photos" in added.stdout
        cipher, back = tmp_path / f"c-{fmt}", tmp_path / f"r-{fmt}"
        enc = run_cli(
            ["encrypt", str(photos), "-o", str(cipher), "-k", str(key), "-m", f"ric-net-{fmt}", "--quiet"]
        )
        assert enc.returncode == 0 and "4 of 4 files done, 0 failed" in enc.stderr, enc.stderr
        for name, image in read_folder(cipher).items():
            assert image.shape == plain[name].shape  # the photo's own height, width and channels
        on_plain = run_cli(["classify", str(photos), "-m", f"net-{fmt}", "--quiet"])
        on_cipher = run_cli(["classify", str(cipher), "--quiet"])  # the card each header names
        assert on_plain.returncode == on_cipher.returncode == 0, on_cipher.stderr
        labels[fmt] = labels_of(on_plain.stdout)
        assert labels_of(on_cipher.stdout) == labels[fmt]
        dec = run_cli(["decrypt", str(cipher), "-o", str(back), "-k", str(key), "--quiet"], threads=2)
        assert dec.returncode == 0, dec.stderr
        recovered = read_folder(back)
        assert all(np.array_equal(recovered[name], plain[name]) for name in plain)
    assert labels["onnx"] == labels["torchscript"]
    card = user_zoo()["net-onnx"]
    assert card["format"] == "onnx" and card["classes"] == CLASSES and len(card["sha256"]) == 64
    assert card["preprocessing"]["input_size"] == [48, 48] and card["preprocessing"]["resize"] == 56
    ric = user_zoo()["ric-net-onnx"]
    assert ric["digit_bits_from"] == "calibration" and ric["calibration"]["images"] == 4
    assert ric["digit_bits"] == ric["calibration"]["digit_bits"]


def test_decryption_needs_no_classifier(exported, photos, tmp_path) -> None:
    """A decrypting machine whose zoo lacks the classifier's file still recovers every photo."""
    folder = tmp_path / "zoo"
    env = {"NOISEVEIL_WEIGHTS": str(folder)}
    key = tmp_path / "k.key"
    SecretKey.generate().save(key)
    args = [
        "model",
        "add",
        "net",
        "--classifier",
        str(exported["torchscript"]),
        "--labels",
        str(exported["labels"]),
    ]
    assert run_cli(args + PIPELINE + ["--digit-bits", "6"], env=env).returncode == 0
    enc = run_cli(
        ["encrypt", str(photos), "-o", str(tmp_path / "c"), "-k", str(key), "-m", "ric-net"], env=env
    )
    assert enc.returncode == 0, enc.stderr
    (folder / "net.pt").unlink()  # the classifier is gone from this machine
    dec = run_cli(["decrypt", str(tmp_path / "c"), "-o", str(tmp_path / "r"), "-k", str(key)], env=env)
    assert dec.returncode == 0, dec.stderr
    recovered, plain = read_folder(tmp_path / "r"), read_folder(photos)
    assert all(np.array_equal(recovered[name], plain[name]) for name in plain)
    again = run_cli(
        ["encrypt", str(photos), "-o", str(tmp_path / "c2"), "-k", str(key), "-m", "ric-net"], env=env
    )
    assert again.returncode != 0 and "net.pt" in again.stderr and "Traceback" not in again.stderr


class Flat(nn.Module):
    """Takes (N, features): not an image network."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Thresholded(nn.Module):
    """Rounds its input before the network: no gradient reaches the pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.net = SmallNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.round(x * 4) / 4)


def _torchscript(module: nn.Module, path: Path, example: torch.Tensor) -> Path:
    torch.jit.save(torch.jit.trace(module.eval(), example), str(path))
    return path


def test_bad_classifier_files_get_one_line_and_nothing_is_written(exported, tmp_path) -> None:
    (tmp_path / "notes.pt").write_text("not a model")
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    flat = _torchscript(Flat(), tmp_path / "flat.pt", torch.rand(2, 48))
    rounded = _torchscript(Thresholded(), tmp_path / "rounded.pt", torch.rand(2, 3, 48, 48))
    labels, good = str(exported["labels"]), str(exported["torchscript"])
    cases = {
        "not a model": ["x1", "--classifier", str(tmp_path / "notes.pt"), "--labels", labels],
        "no such file": ["x2", "--classifier", str(tmp_path / "missing.onnx"), "--labels", labels],
        "not (2, classes)": ["x3", "--classifier", str(flat), "--labels", labels],
        "no labels": ["x4", "--classifier", good, "--labels", str(tmp_path / "empty.txt")],
        "names 3": ["x5", "--classifier", good, "--labels", str(tmp_path / "three.txt")],
        "no gradient": ["x6", "--classifier", str(rounded), "--labels", labels],
        "is a shipped model": ["imagenet-squeezenet", "--classifier", good, "--labels", labels],
    }
    before = user_zoo()
    for needle, args in cases.items():
        proc = run_cli(["model", "add", *args, *PIPELINE])
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (needle, proc.stderr)
        assert needle in lines[0] and "Traceback" not in proc.stderr, (needle, lines[0])
    assert user_zoo() == before
    no_size = run_cli(["model", "add", "x7", "--classifier", good, "--labels", labels])
    assert no_size.returncode == 2 and "--input-size" in no_size.stderr


def test_the_python_api_takes_an_nn_module_and_never_overwrites(photos) -> None:
    import noiseveil as nv

    pipeline = Preprocessing(
        input_size=(48, 48), resize=56, **{k: PRESETS["imagenet"][k] for k in ("mean", "std")}
    )
    classifier_id, ric_id = nv.add_classifier("net-module", SmallNet(), pipeline, CLASSES)
    assert (classifier_id, ric_id) == ("net-module", "ric-net-module")
    with pytest.raises(zoo.ZooError, match="exists in your zoo"):
        nv.add_classifier("net-module", SmallNet(), pipeline, CLASSES)
    scheme = nv.load_scheme(ric_id)
    reference = PreprocessedClassifier(SmallNet().eval(), pipeline)
    key = SecretKey.generate()
    for _, image in load_photos(photos):
        x = to_tensor(image[None])
        (ct,) = scheme.encrypt(x, key)
        assert ct.pixels.shape == image.shape
        with torch.no_grad():  # the stored (traced) network is the module's function
            assert reference(x).argmax(1) == scheme.cloud_classifier()(to_tensor(ct.pixels[None])).argmax(1)
        assert np.array_equal(scheme.decrypt_images([ct], key)[0], image)


def test_the_pipeline_follows_torchvision_geometry() -> None:
    """Resize of the shorter side (aspect kept, long side truncated) and a rounded centre crop."""
    assert resized_shape(300, 451, 256) == (256, 384) and resized_shape(640, 427, 256) == (383, 256)
    pipeline = Preprocessing(input_size=(4, 4), resize=8, mean=(0.5,) * 3, std=(0.25,) * 3)
    image = torch.zeros(1, 3, 16, 24)
    image[..., 2:14, 6:18] = 1.0  # covers the centre crop (rows 4-12, columns 8-16) and the resize's reach
    image[..., 0, 0] = 50.0  # outside the crop's reach: no effect
    prepared = PreprocessedClassifier(nn.Identity(), pipeline).prepare(image)
    assert prepared.shape == (1, 3, 4, 4) and torch.allclose(prepared, torch.full_like(prepared, 2.0))
    grey = PreprocessedClassifier(nn.Identity(), pipeline).prepare(torch.ones(1, 1, 8, 8))
    assert grey.shape == (1, 3, 4, 4)


def test_jpeg_photos_are_encrypted_upright_as_a_viewer_shows_them(tmp_path) -> None:
    """A phone's JPEG stores rows as the sensor read them plus an EXIF Orientation: the
    plaintext is the upright image, and that is what decryption gives back, bit for bit."""
    image = next(img for name, img in load_photos() if name == "coffee")  # 400x600
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    Image.fromarray(image).save(tmp_path / "phone.jpg", quality=90, exif=exif)
    upright = read_image(tmp_path / "phone.jpg")
    assert upright.shape == (600, 400, 3)
    scheme = zoo.load_scheme("ric-imagenet")
    key = SecretKey.generate()
    (ct,) = scheme.encrypt(to_tensor(upright[None]), key)
    assert ct.pixels.shape == (600, 400, 3)
    assert np.array_equal(scheme.decrypt_images([ct], key)[0], upright)


@pytest.mark.parametrize("digit_bits", range(1, 8))
def test_digit_packing_is_the_bit_string_cut_into_digits(digit_bits: int) -> None:
    """The grouped packing equals the plain definition: the bytes' bits, MSB first, b at a time."""
    rng = np.random.default_rng(digit_bits)
    for samples in (1, 7, 9, 100, 3 * 32 * 32 + 5):
        data = rng.integers(0, 256, samples * digit_bits // 8, dtype=np.uint8).tobytes()
        digits = bytes_to_digits(data, samples, digit_bits)
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        expected = bits.reshape(-1, digit_bits) if len(bits) % digit_bits == 0 else None
        if expected is not None and len(expected) == samples:
            weights = 1 << np.arange(digit_bits - 1, -1, -1)
            assert np.array_equal(digits, (expected * weights).sum(1))
        assert digits.shape == (samples,) and digits.max(initial=0) < 1 << digit_bits
        assert digits_to_bytes(digits, digit_bits, len(data)) == data


def test_a_photo_too_small_or_of_four_channels_is_refused_in_one_line(tmp_path) -> None:
    Image.fromarray(np.zeros((20, 50, 3), np.uint8)).save(tmp_path / "tiny.png")
    Image.fromarray(np.zeros((64, 64, 4), np.uint8)).save(tmp_path / "rgba.png")  # alpha is dropped
    key = tmp_path / "k.key"
    SecretKey.generate().save(key)
    proc = run_cli(
        ["encrypt", str(tmp_path), "-o", str(tmp_path / "c"), "-k", str(key), "-m", "ric-imagenet"]
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        "FAILED" in proc.stderr and "tiny.png" in proc.stderr and "32 to 16383 pixels a side" in proc.stderr
    )
    assert "1 of 2 files done, 1 failed" in proc.stderr  # the RGBA one is read as RGB and encrypted


def test_a_python_snippet_in_a_fresh_process_sees_the_users_zoo(exported, tmp_path) -> None:
    """The user's zoo is found through $NOISEVEIL_WEIGHTS by the API, in another process."""
    env = {**os.environ, "NOISEVEIL_WEIGHTS": str(tmp_path / "zoo")}
    code = (
        "import noiseveil as nv; from noiseveil.classifiers.preprocessing import Preprocessing;"
        f"nv.add_classifier('n', __import__('pathlib').Path({str(exported['onnx'])!r}),"
        "Preprocessing(input_size=(48, 48)), [str(i) for i in range(10)]);"
        "print(nv.load_scheme('ric-n').model_id)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ric-n", proc.stderr
    assert (tmp_path / "zoo" / "n.onnx").is_file()


def test_the_cli_offers_every_named_pipeline() -> None:
    from noiseveil.app.cli import PRESET_NAMES  # kept beside the parser so that --help imports no torch

    assert set(PRESET_NAMES) == set(PRESETS)


def test_the_cloud_serves_a_users_card_and_a_multi_megapixel_photo(tmp_path) -> None:
    """Over HTTP: the cloud, serving every model of both zoos by default, stores and labels a
    3-megapixel photo's ciphertext (ric-imagenet) and one made for a user's own card, each with
    the label its card's pipeline gives; the key holder downloads and recovers the photo."""
    from fastapi.testclient import TestClient

    import noiseveil as nv
    from noiseveil.app.service.server import CloudStore, ServiceSettings, create_app
    from noiseveil.io.png import ciphertext_from_bytes, ciphertext_to_bytes

    pipeline = Preprocessing(input_size=(48, 48), resize=56)
    nv.add_classifier("served-net", SmallNet(), pipeline, CLASSES)
    chelsea = next(img for name, img in load_photos() if name == "chelsea")
    large = np.asarray(Image.fromarray(chelsea).resize((2048, 1536), Image.Resampling.LANCZOS))
    key = SecretKey.generate()
    store = CloudStore(ServiceSettings(tmp_path / "cloud"))
    assert {"ric-imagenet", "ric-served-net"} <= set(store.models.served)
    provider, reader = store.new_token("p", "provider").token, store.new_token("u", "user").token
    with TestClient(create_app(store)) as client:
        for model_id, photo in (("ric-imagenet", large), ("ric-served-net", chelsea)):
            scheme = nv.load_scheme(model_id)
            (ct,) = scheme.encrypt(to_tensor(photo[None]), key)
            body = ciphertext_to_bytes(ct)
            r = client.post("/v1/images", content=body, headers={"Authorization": f"Bearer {provider}"})
            assert r.status_code == 201, r.text
            with torch.no_grad():
                expected = int(scheme.cloud_classifier()(to_tensor(photo[None])).argmax(1))
            assert r.json()["label"] == expected and r.json()["model_id"] == model_id
            got = client.get(
                f"/v1/images/{r.json()['id']}/file", headers={"Authorization": f"Bearer {reader}"}
            )
            back = scheme.decrypt_images([ciphertext_from_bytes(got.content)], key)[0]
            assert np.array_equal(back, photo)
    store.engine.dispose()


def test_evaluate_runs_a_photo_model_on_photos(tmp_path) -> None:
    out = tmp_path / "eval.json"
    proc = run_cli(["evaluate", "-m", "ric-imagenet", "-n", "3", "--out", str(out), "--quiet"])
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    summary = result["summary"]
    assert summary["images"] == 3 and summary["label_agreement"] == 1.0 and summary["bit_exact_share"] == 1.0
    assert summary["ssim_cipher_vs_plain"]["max"] < 0.05 and len(result["per_photo"]) == 3
    assert "ric-imagenet" in proc.stdout and "100.00" in proc.stdout


def test_a_large_photo_is_compressed_in_strips_and_comes_back_whole() -> None:
    """Above 4 M samples the payload holds row strips (decoded in parallel threads); the strips
    put back give the photo bit for bit, and a small photo keeps the one-bitstream format."""
    from noiseveil.schemes import ric_lossless as rl

    retina = next(img for name, img in load_photos() if name == "retina")  # 1411x1411x3: 6 M samples
    assert len(rl.strips_of(retina.shape)) == 2
    packed = rl.pack_image(retina, rl.capacity_bytes(retina.shape, 6) - 16)
    assert packed.plaintext[0] == rl.STRIPS_VERSION and packed.dropped_bits == 0
    assert np.array_equal(rl.unpack_image(packed.plaintext, retina.shape), retina)
    small = retina[:300, :400]
    assert rl.pack_image(small, rl.capacity_bytes(small.shape, 6)).plaintext[0] == rl.PAYLOAD_VERSION

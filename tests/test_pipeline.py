"""Folders in, folders out: encrypt_files / decrypt_files / classify_files with a tiny scheme."""

from __future__ import annotations

import dataclasses
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import digests
from PIL import Image

from noiseveil import pipeline
from noiseveil.crypto.keys import SecretKey
from noiseveil.data import DataError, read_image, to_tensor, to_uint8
from noiseveil.io.png import read_ciphertext, write_ciphertext
from noiseveil.pipeline import (
    Report,
    classify_files,
    decrypt_files,
    encrypt_files,
    left_out,
    plan,
    plan_listed,
    without_existing_outputs,
)
from noiseveil.schemes.ric import RICScheme

GOOD = ["a.png", "sub/b.png", "sub/deeper/c.png", "sub/e.jpg"]
GOOD_OUT = ["a.png", "sub/b.png", "sub/deeper/c.png", "sub/e.png"]
BAD = ["x.png", "sub/truncated.png", "big/rgb32.png", "sub/deeper/rgb28.png"]


def grey(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (28, 28), dtype=np.uint8)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    for i, name in enumerate(GOOD):
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grey(i)).save(path, format="JPEG" if name.endswith(".jpg") else "PNG")
    (src / "x.png").write_text("not an image\n")
    full = src / "sub" / "full.bin"
    Image.fromarray(np.random.default_rng(9).integers(0, 256, (64, 64), dtype=np.uint8)).save(
        full, format="PNG"
    )
    (src / "sub" / "truncated.png").write_bytes(full.read_bytes()[:-1000])
    full.unlink()
    (src / "big").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(src / "big" / "rgb32.png")
    Image.fromarray(np.full((28, 28, 3), 200, np.uint8)).save(src / "sub" / "deeper" / "rgb28.png")
    (src / "notes.txt").write_text("ignored: not an image suffix\n")
    return src


def files(root: Path) -> set[str]:
    return (
        {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    )


def reasons(report: Report, root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): reason for p, reason in report.failures}


@pytest.fixture
def encrypted(tiny_ric: RICScheme, key: SecretKey, tree: Path, tmp_path: Path) -> tuple[Path, Report]:
    out = tmp_path / "cipher"
    return out, encrypt_files(tiny_ric, key, plan(tree, out), batch_size=3, progress=False)


def test_plan_mirrors_the_tree(tree: Path, tmp_path: Path) -> None:
    pairs = plan(tree, tmp_path / "o")
    assert [(s.relative_to(tree).as_posix(), d.relative_to(tmp_path / "o").as_posix()) for s, d in pairs] == [
        ("a.png", "a.png"),
        ("big/rgb32.png", "big/rgb32.png"),
        ("sub/b.png", "sub/b.png"),
        ("sub/deeper/c.png", "sub/deeper/c.png"),
        ("sub/deeper/rgb28.png", "sub/deeper/rgb28.png"),
        ("sub/e.jpg", "sub/e.png"),
        ("sub/truncated.png", "sub/truncated.png"),
        ("x.png", "x.png"),
    ]
    assert [d for _, d in plan(tree, None)] == [None] * 8


def test_plan_single_file(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "o").mkdir()
    assert plan(tree / "a.png", tmp_path / "o") == [(tree / "a.png", tmp_path / "o" / "a.png")]
    assert plan(tree / "sub" / "e.jpg", tmp_path / "o") == [
        (tree / "sub" / "e.jpg", tmp_path / "o" / "e.png")
    ]
    assert plan(tree / "a.png", tmp_path / "new.png") == [(tree / "a.png", tmp_path / "new.png")]
    with pytest.raises(DataError, match="no such file or folder"):
        plan(tmp_path / "missing", tmp_path / "o")


def test_an_output_folder_inside_the_input_is_output_not_input(tree: Path, tmp_path: Path) -> None:
    """Issue 27: `encrypt p2/ -o p2/enc/` read p2/enc/ back as input on a rerun."""
    inputs = [s for s, _ in plan(tree, tmp_path / "o")]
    (tree / "sub" / "enc" / "x").mkdir(parents=True)
    for name in ("a.png", "x/b.png"):
        Image.fromarray(grey(0)).save(tree / "sub" / "enc" / name)
    (tree / "sub" / "enc" / "log.txt").write_text("an output, not the user's input\n")
    assert [s for s, _ in plan(tree, tree / "sub" / "enc")] == inputs
    assert [s for s, _ in plan(tree, tree / "sub" / "enc" / "..")] != inputs  # sub/ is not the output
    assert len(plan(tree, tree / "sub" / "enc-2")) == len(inputs) + 2  # a name that only starts alike
    assert left_out(tree, tree / "sub" / "enc") == [tree / "notes.txt"]
    assert left_out(tree, None) == [tree / "notes.txt", tree / "sub" / "enc" / "log.txt"]
    assert left_out(tree / "a.png", None) == []
    with pytest.raises(DataError, match="the output folder is the input folder"):
        plan(tree, tree / "sub" / "..")
    only_output = tmp_path / "only"
    (only_output / "out").mkdir(parents=True)
    Image.fromarray(grey(0)).save(only_output / "out" / "a.png")
    with pytest.raises(DataError, match="no PNG or JPEG files outside the output folder"):
        plan(only_output, only_output / "out")
    with pytest.raises(DataError, match="line 2: 'sub/enc/a.png' is in the output folder"):
        plan_listed(tree, ["a.png", "sub/enc/a.png"], tree / "sub" / "enc")


def test_one_file_into_a_folder_written_as_a_folder(tree: Path, tmp_path: Path) -> None:
    """`-o out/` (a trailing slash: ``folder``) is a folder even before it exists (issue 27)."""
    assert plan(tree / "a.png", tmp_path / "out", folder=True) == [
        (tree / "a.png", tmp_path / "out" / "a.png")
    ]
    assert plan(tree / "a.png", tmp_path / "out") == [(tree / "a.png", tmp_path / "out")]


def test_a_file_list_plans_only_its_files_in_its_order_and_stays_inside_the_folder(
    tiny_ric: RICScheme, key: SecretKey, tree: Path, tmp_path: Path
) -> None:
    names = ["sub/e.jpg", "a.png", "sub/missing.png", "a.png"]
    pairs = plan_listed(tree, names, tmp_path / "o")
    assert [(s.relative_to(tree).as_posix(), d.relative_to(tmp_path / "o").as_posix()) for s, d in pairs] == [
        ("sub/e.jpg", "sub/e.png"),
        ("a.png", "a.png"),
        ("sub/missing.png", "sub/missing.png"),
    ]
    report = encrypt_files(tiny_ric, key, pairs, batch_size=2, progress=False)
    assert report.done == 2 and list(reasons(report, tree)) == ["sub/missing.png"]
    assert files(tmp_path / "o") == {"a.png", "sub/e.png"}
    for bad in ("../a.png", str(tree / "a.png"), "sub/../../a.png", "."):
        with pytest.raises(DataError, match="line 3: .* is not a path inside"):
            plan_listed(tree, ["a.png", "", bad], tmp_path / "o")  # blank lines count as lines
    with pytest.raises(DataError, match="not a folder"):
        plan_listed(tree / "a.png", ["a.png"], tmp_path / "o")


def test_encrypt_folder(
    tiny_ric: RICScheme, key: SecretKey, tree: Path, tmp_path: Path, encrypted: tuple[Path, Report]
) -> None:
    out, report = encrypted
    assert report.action == "encrypt"
    assert report.done == 4
    assert not report.ok
    failed = reasons(report, tree)
    assert sorted(failed) == sorted(BAD)
    for name, reason in failed.items():
        assert reason.startswith(str(tree / name)), reason
        assert "\n" not in reason
    assert "not a readable image" in failed["x.png"]
    assert "not a readable image" in failed["sub/truncated.png"]
    assert "is 32x32x3, model test-ric takes 28x28x1" in failed["big/rgb32.png"]
    assert "is 28x28x3, model test-ric takes 28x28x1" in failed["sub/deeper/rgb28.png"]
    assert files(out) == set(GOOD_OUT)
    for name in GOOD_OUT:
        ct = read_ciphertext(out / name)
        assert ct.pixels.shape == (28, 28, 1)
        assert (ct.model_id, ct.key_id) == ("test-ric", key.key_id)
        tiny_ric.verify(ct, key)
    assert len({read_ciphertext(out / n).fields["nonce"] for n in GOOD_OUT}) == 4


def test_encrypt_leaves_inputs_untouched(
    tiny_ric: RICScheme, key: SecretKey, tree: Path, tmp_path: Path
) -> None:
    before = digests(tree)
    encrypt_files(tiny_ric, key, plan(tree, tmp_path / "cipher"), batch_size=3, progress=False)
    assert digests(tree) == before


def test_encrypt_again_overwrites_nothing(
    tiny_ric: RICScheme, key: SecretKey, tree: Path, encrypted: tuple[Path, Report]
) -> None:
    out, _ = encrypted
    before = digests(out)
    again = encrypt_files(tiny_ric, key, plan(tree, out), batch_size=3, progress=False)
    assert again.done == 0
    failed = reasons(again, tree)
    assert sorted(failed) == sorted(GOOD + BAD)  # every file failed
    for src, dst in zip(GOOD, GOOD_OUT, strict=True):
        assert failed[src] == f"{out / dst}: exists; refusing to overwrite"
    assert digests(out) == before
    assert again.summary() == "encrypt: 0 of 8 files done, 8 failed"


@pytest.fixture(params=["small", "photo"])
def writes(request, monkeypatch) -> dict[str, list[str]]:
    """Where decryption encodes and writes: a small image on the caller's thread, a photo (here:
    every image, one image per batch) on the writer thread while the caller reads and decrypts
    the next batch. Yields the names of the threads that encoded and wrote."""
    threads: dict[str, list[str]] = {"encode": [], "write": []}
    if request.param == "photo":
        monkeypatch.setattr(pipeline, "WRITE_BEHIND_SAMPLES", 1)
        monkeypatch.setattr(pipeline, "SAMPLE_BUDGET", 1)
    for what, name in (("encode", "image_to_bytes"), ("write", "write_new_file")):
        original = getattr(pipeline, name)

        def recorded(*args, _original=original, _what=what, **kwargs):
            threads[_what].append(threading.current_thread().name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(pipeline, name, recorded)
    yield threads
    where = "noiseveil-write" if request.param == "photo" else threading.main_thread().name
    for what in ("encode", "write"):
        assert threads[what] and all(name.startswith(where) for name in threads[what]), threads


@pytest.mark.usefixtures("writes")
def test_decrypt_folder(
    tiny_ric: RICScheme, key: SecretKey, tree: Path, tmp_path: Path, encrypted: tuple[Path, Report]
) -> None:
    out, _ = encrypted
    rec = tmp_path / "recovered"
    before = digests(out)
    report = decrypt_files(lambda m: tiny_ric, key, plan(out, rec), batch_size=3, progress=False)
    assert report.ok and report.done == 4 and report.failures == []
    assert report.summary().startswith("decrypt: 4 of 4 files done, 0 failed, ")
    assert files(rec) == set(GOOD_OUT)
    assert digests(out) == before
    for name in GOOD_OUT:
        recovered = read_image(rec / name)
        assert recovered.shape == (28, 28, 1) and recovered.dtype == np.uint8
        expected = to_uint8(tiny_ric.decrypt([read_ciphertext(out / name)], key))[0]
        assert np.abs(recovered.astype(int) - expected.astype(int)).max() <= 1
    # decrypting again into the same folder overwrites nothing
    rec_before = digests(rec)
    again = decrypt_files(lambda m: tiny_ric, key, plan(out, rec), batch_size=3, progress=False)
    assert again.done == 0 and len(again.failures) == 4
    assert all("exists" in reason for _, reason in again.failures)
    assert digests(rec) == rec_before


def test_decrypt_with_wrong_key_writes_nothing(
    tiny_ric: RICScheme, tree: Path, tmp_path: Path, encrypted: tuple[Path, Report]
) -> None:
    out, _ = encrypted
    rec = tmp_path / "recovered"
    report = decrypt_files(
        lambda m: tiny_ric, SecretKey.generate(), plan(out, rec), batch_size=3, progress=False
    )
    assert report.done == 0
    assert sorted(reasons(report, out)) == sorted(GOOD_OUT)
    assert all("wrong key" in reason for _, reason in report.failures)
    assert files(rec) == set()
    assert report.summary() == "decrypt: 0 of 4 files done, 4 failed"


@pytest.mark.usefixtures("writes")
def test_decrypt_skips_bad_files_and_goes_on(
    tiny_ric: RICScheme, key: SecretKey, tree: Path, tmp_path: Path, encrypted: tuple[Path, Report]
) -> None:
    out, _ = encrypted
    # A plain PNG, a text file, a tampered ciphertext and an authentic ciphertext whose NAE
    # classifier differs from the scheme's (verify passes; the scheme refuses it).
    Image.fromarray(grey(5)).save(out / "plain.png")
    (out / "sub" / "text.png").write_text("nope")
    ct = read_ciphertext(out / "a.png")
    tampered = dataclasses.replace(ct, pixels=ct.pixels ^ np.uint8(1))
    write_ciphertext(out / "sub" / "tampered.png", tampered)
    other = dataclasses.replace(ct, fields={**ct.fields, "weights": "0" * 64}).seal(key)
    write_ciphertext(out / "sub" / "zz-other-weights.png", other)
    rec = tmp_path / "recovered"
    report = decrypt_files(lambda m: tiny_ric, key, plan(out, rec), batch_size=16, progress=False)
    failed = reasons(report, out)
    assert sorted(failed) == ["plain.png", "sub/tampered.png", "sub/text.png", "sub/zz-other-weights.png"]
    assert "not a noiseveil ciphertext" in failed["plain.png"]
    assert "not a readable PNG" in failed["sub/text.png"]
    assert "authentication failed" in failed["sub/tampered.png"]
    assert failed["sub/zz-other-weights.png"].startswith(
        "ciphertext was made with other weights of test-ric (sha256 000000000000), these are "
    )
    for name in ("plain.png", "sub/text.png"):
        assert failed[name].startswith(f"{out / name}: ")
    assert report.done == 4
    assert files(rec) == set(GOOD_OUT)


def test_decrypt_model_lookup_failure_is_per_file(
    key: SecretKey, tmp_path: Path, encrypted: tuple[Path, Report]
) -> None:
    from noiseveil.zoo import ZooError

    def no_scheme(model_id: str) -> RICScheme:
        raise ZooError(f"no model {model_id!r} in the zoo")

    out, _ = encrypted
    report = decrypt_files(no_scheme, key, plan(out, tmp_path / "rec"), progress=False)
    assert report.done == 0 and len(report.failures) == 4
    assert all("'test-ric'" in reason for _, reason in report.failures)
    assert files(tmp_path / "rec") == set()


def test_classify_files(tiny_ric: RICScheme, tree: Path, encrypted: tuple[Path, Report]) -> None:
    srcs = [s for s, _ in plan(tree, None)]
    report = classify_files(tiny_ric.classifier, (28, 28, 1), srcs, batch_size=3, progress=False)
    assert report.done == 4
    assert sorted(reasons(report, tree)) == sorted(BAD)
    assert [p.relative_to(tree).as_posix() for p, _ in report.results] == sorted(GOOD)
    images = to_tensor(np.stack([read_image(tree / n) for n in sorted(GOOD)]))
    with torch.no_grad():
        expected = tiny_ric.classifier(images).argmax(1).tolist()
    assert [label for _, label in report.results] == expected
    # the cloud classifies ciphertext files the same way
    out, _ = encrypted
    cipher = classify_files(tiny_ric.classifier, (28, 28, 1), [out / n for n in GOOD_OUT], progress=False)
    assert cipher.ok and cipher.done == 4


def test_report_summary() -> None:
    report = Report("encrypt")
    assert report.ok
    assert report.summary() == "encrypt: 0 of 0 files done, 0 failed"
    report.done = 6
    report.fail(Path("a.png"), ValueError("a.png: broken"))
    report.fail(Path("b.png"), "b.png: also broken")
    assert not report.ok
    assert report.failures == [(Path("a.png"), "a.png: broken"), (Path("b.png"), "b.png: also broken")]
    assert report.summary() == "encrypt: 6 of 8 files done, 2 failed"
    report.seconds = 2.0
    assert report.summary() == "encrypt: 6 of 8 files done, 2 failed, 3.0 images/s"
    assert re.fullmatch(r"encrypt: \d+ of \d+ files done, \d+ failed(, [\d.]+ images/s)?", report.summary())
    # the counts add up: done + failed + already done (skipped) = the files of the run (issue 27)
    report.skipped, report.left_out, report.seconds = 5, 1, 0.0
    assert report.summary() == (
        "encrypt: 6 of 13 files done, 2 failed, 5 already done (skipped), 1 not an image (left out)"
    )


def test_classify_without_a_known_shape_takes_the_first_readable_image(tmp_path, tiny_ric):
    """A TorchScript model does not state its input shape: a bad first file must not stop the run."""
    from noiseveil.io.png import write_image
    from noiseveil.pipeline import classify_files

    (tmp_path / "a-broken.png").write_text("not an image")
    write_image(tmp_path / "b-good.png", np.zeros((28, 28, 1), np.uint8))
    write_image(tmp_path / "c-other-size.png", np.zeros((32, 32, 1), np.uint8))
    files = sorted(tmp_path.glob("*.png"))
    report = classify_files(tiny_ric.classifier, None, files, progress=False)
    assert [p.name for p, _ in report.results] == ["b-good.png"]
    assert [p.name for p, _ in report.failures] == ["a-broken.png", "c-other-size.png"]
    assert "28x28x1" in report.failures[1][1]


def test_a_rerun_skips_finished_outputs_and_clears_only_their_missing_ones_torn_writes(
    tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o"
    pairs = plan(tree, out)
    (out / "sub").mkdir(parents=True)
    (out / "a.png").write_bytes(b"finished")
    torn = [out / "sub" / ".b.png.k3_x9.tmp", out / ".x.png.q1.tmp"]  # write_image's temporary names
    kept = [out / ".a.png.zz.tmp", out / "sub" / "notes.tmp"]  # a finished output's, not ours
    for f in torn + kept:
        f.write_bytes(b"half")
    todo, done = without_existing_outputs(pairs)
    assert done == 1 and [d for _, d in todo] == [d for _, d in pairs if d != out / "a.png"]
    assert not any(f.exists() for f in torn) and all(f.exists() for f in kept)

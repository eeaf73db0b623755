"""What a new user hit in the CLI (issue 27), each as the command that showed it, in fresh
processes: an output folder inside the input read back as input, ``-o DIR/`` for one file,
files that are not images left out without a word, a missing ``-k`` handled two ways,
progress frames in a redirected log, a refusal to overwrite that did not name the way out.

EtC with its model's PUBLIC demo key: exact and fast, so the tests are about the commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from noiseveil.app.exit_codes import EXIT_ERROR, EXIT_FAILED_FILES, EXIT_OK
from noiseveil.data import read_image
from noiseveil.io.png import read_ciphertext
from noiseveil.zoo import load_scheme

MODEL = "etc-cifar10-convmixer"


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "demo.key"
    load_scheme(MODEL).demo_key().save(path)
    return path


def photos(folder: Path, names: list[str]) -> dict[str, np.ndarray]:
    made = {}
    for i, name in enumerate(names):
        pixels = np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / name)
        made[name] = pixels
    return made


def nv(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess:
    return run_cli([str(a) for a in args], cwd=cwd, timeout=300)


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return proc.stderr.strip().splitlines()


def test_progress_in_a_redirected_log_is_plain_lines(tmp_path, key) -> None:
    """Without --quiet and with stderr not a terminal: plain progress lines, no tqdm frames."""
    photos(tmp_path / "photos", ["a.png", "sub/b.png"])
    argv = [sys.executable, "-m", "noiseveil.app.cli", "encrypt", "photos", "-o", "cipher", "-k", str(key)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*argv, "-m", MODEL], cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert b"\r" not in proc.stderr  # bytes: text mode would read a carriage return as a newline
    lines = proc.stderr.decode().splitlines()
    assert lines[0].startswith("encrypt: 2/2 img (100%), ") and lines[0].endswith(" s"), lines
    assert lines[1].startswith("encrypt: 2 of 2 files done, 0 failed"), lines


def test_an_output_folder_inside_the_input_folder_is_not_read_back_as_input(tmp_path, key) -> None:
    """`encrypt p2/ -o p2/enc/`, then again with --skip-existing: the ciphertexts are not
    encrypted again into p2/enc/enc/, and the summary's counts add up (decrypt alike)."""
    photos(tmp_path / "p2", ["a.png", "b.png", "sub/c.png"])
    encrypt = ["encrypt", "p2/", "-o", "p2/enc/", "-k", key, "-m", MODEL, "--quiet"]
    first = nv(tmp_path, *encrypt)
    assert first.returncode == EXIT_OK and stderr_lines(first)[-1].startswith("encrypt: 3 of 3 files done")
    again = nv(tmp_path, *encrypt, "--skip-existing")
    assert again.returncode == EXIT_OK, again.stderr
    assert not (tmp_path / "p2" / "enc" / "enc").exists()
    assert stderr_lines(again) == ["encrypt: 0 of 3 files done, 0 failed, 3 already done (skipped)"]
    decrypt = ["decrypt", "p2/enc", "-o", "p2/enc/back", "-k", key, "--quiet"]
    assert nv(tmp_path, *decrypt).returncode == EXIT_OK
    rerun = nv(tmp_path, *decrypt, "--skip-existing")
    assert stderr_lines(rerun) == ["decrypt: 0 of 3 files done, 0 failed, 3 already done (skipped)"]
    assert not (tmp_path / "p2" / "enc" / "back" / "back").exists()
    same = nv(tmp_path, "encrypt", "p2", "-o", "p2/", "-k", key, "-m", MODEL)
    assert same.returncode == EXIT_ERROR and len(stderr_lines(same)) == 1, same.stderr
    assert "the output folder is the input folder" in same.stderr


def test_one_file_to_a_folder_keeps_its_name(tmp_path, key) -> None:
    """`encrypt photos/x.png -o out/`: out/x.png, not a file named `out`; a trailing slash or
    an existing folder means a folder, and any other name is the output file's."""
    photos(tmp_path / "photos", ["x.png"])
    done = nv(tmp_path, "encrypt", "photos/x.png", "-o", "out/", "-k", key, "-m", MODEL, "--quiet")
    assert done.returncode == EXIT_OK, done.stderr
    assert (tmp_path / "out").is_dir() and read_ciphertext(tmp_path / "out" / "x.png").model_id == MODEL
    back = nv(tmp_path, "decrypt", "out/x.png", "-o", "back/", "-k", key, "--quiet")
    assert back.returncode == EXIT_OK, back.stderr
    assert np.array_equal(read_image(tmp_path / "back" / "x.png"), read_image(tmp_path / "photos" / "x.png"))


def test_files_that_are_not_images_are_named_in_one_line(tmp_path, key) -> None:
    """notes.txt beside the images: one line names it and says why it is left out; the summary
    counts it. Hidden files (.DS_Store) are not the user's and stay unmentioned."""
    photos(tmp_path / "photos", ["a.png", "sub/b.png"])
    (tmp_path / "photos" / "notes.txt").write_text("not an image\n")
    (tmp_path / "photos" / "sub" / "scan.gif").write_bytes(b"GIF89a")
    (tmp_path / "photos" / ".DS_Store").write_bytes(b"hidden: not the user's")
    proc = nv(tmp_path, "encrypt", "photos", "-o", "cipher", "-k", key, "-m", MODEL, "--quiet")
    assert proc.returncode == EXIT_OK, proc.stderr
    lines = stderr_lines(proc)
    assert lines[0] == "encrypt: left out 2 files that are not PNG or JPEG images: notes.txt, sub/scan.gif"
    assert "DS_Store" not in proc.stderr
    assert lines[-1].startswith("encrypt: 2 of 2 files done, 0 failed, 2 not images (left out)"), lines
    assert len(lines) == 2
    classify = nv(tmp_path, "classify", "photos", "-m", MODEL, "--quiet")
    assert stderr_lines(classify)[0].startswith("classify: left out 2 files that are not PNG or JPEG")


def test_a_missing_key_is_refused_once_at_the_start_by_decrypt_too(tmp_path, key) -> None:
    """decrypt without -k: one line and exit 2, as encrypt does, not a FAILED line per file."""
    photos(tmp_path / "photos", ["a.png", "b.png"])
    assert (
        nv(tmp_path, "encrypt", "photos", "-o", "cipher", "-k", key, "-m", MODEL, "--quiet").returncode == 0
    )
    proc = nv(tmp_path, "decrypt", "cipher", "-o", "back", "--quiet")
    assert proc.returncode == EXIT_ERROR and "Traceback" not in proc.stderr
    assert stderr_lines(proc) == [
        "noiseveil decrypt: error: cipher/a.png was encrypted with a key: -k KEY, the key file it was "
        "encrypted with"
    ]
    assert not (tmp_path / "back").exists()


def test_the_refusal_to_overwrite_says_how_to_do_only_the_rest(tmp_path, key) -> None:
    photos(tmp_path / "photos", ["a.png", "b.png"])
    encrypt = ["encrypt", "photos", "-o", "cipher", "-k", key, "-m", MODEL, "--quiet"]
    assert nv(tmp_path, *encrypt).returncode == EXIT_OK
    (tmp_path / "cipher" / "b.png").unlink()
    again = nv(tmp_path, *encrypt)
    assert again.returncode == EXIT_FAILED_FILES
    lines = stderr_lines(again)
    assert lines[0] == "FAILED photos/a.png: cipher/a.png: exists; refusing to overwrite"
    assert lines[1] == "1 output exists already: --skip-existing leaves it as it is and does the rest"
    assert lines[2].startswith("encrypt: 1 of 2 files done, 1 failed")

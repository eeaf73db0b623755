"""CLI errors that need no trained model: one line on stderr, no traceback, non-zero exit.

Every ``python -m noiseveil.app.cli`` process imports torch (seconds on a busy machine), so the
commands run once per module, two at a time, and the tests below only inspect their results.
The main cases are real ``python -m noiseveil.app.cli`` processes; the extra cases and every
``--help`` run in one more process that executes the module as ``-m`` does (``runpy``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image

from noiseveil.app.cli import build_parser
from noiseveil.app.exit_codes import EXIT_ERROR, EXIT_FAILED_FILES
from noiseveil.crypto.keys import SecretKey, load_key
from noiseveil.io.png import write_ciphertext
from noiseveil.schemes.base import Ciphertext

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

CASES: dict[str, list[list[str]]] = {
    "keygen-twice": [["keygen", "new.key"], ["keygen", "new.key"]],
    "encrypt-missing-key": [["encrypt", "a.png", "-o", "out1", "-k", "missing.key", "--quiet"]],
    "encrypt-garbage-key": [["encrypt", "a.png", "-o", "out2", "-k", "garbage.key", "--quiet"]],
    "encrypt-unknown-model": [["encrypt", "a.png", "-o", "out3", "-k", "good.key", "-m", "no-such-model"]],
    "classify-unknown-model": [["classify", "a.png", "-m", "no-such-model"]],
    "decrypt-not-png": [["decrypt", "notes.txt", "-o", "rec1.png", "-k", "good.key", "--quiet"]],
}

# Run in one process through runpy (what ``python -m`` does); "help:<cmd>" is "<cmd> --help".
EXTRA_CASES: dict[str, list[str]] = {
    "encrypt-bad-torchscript": [
        *("encrypt", "a.png", "-o", "out4", "-k", "good.key", "-m", "no-such-model"),
        *("--classifier", "bad.pt"),
    ],
    "classify-missing-input": ["classify", "missing-folder", "-m", "no-such-model"],
    "decrypt-unknown-model": ["decrypt", "unknown-model.png", "-o", "rec2.png", "-k", "good.key", "--quiet"],
    "decrypt-missing-key": ["decrypt", "notes.txt", "-o", "rec3.png", "-k", "missing.key"],
    "report-unknown-model": ["report", "security", "--models", "ric-nope", "--out", "sec-out"],
    "encrypt-without-key": ["encrypt", "a.png", "-o", "out5", "-m", "ric-mnist", "--quiet"],
    "decrypt-without-key": ["decrypt", "unknown-model.png", "-o", "rec4.png", "--quiet"],
    "report-stages-of-etc": ["report", "etc", "--stages", "table 1", "--out", "etc-out"],
    "report-unknown-avp-stage": ["report", "avp", "--stages", "table 3", "--out", "avp-out"],
}

DRIVER_SCRIPT = textwrap.dedent(
    """
    import contextlib, io, json, runpy, sys, traceback
    results = {}
    for name, argv in json.loads(sys.argv[1]).items():
        sys.argv = ["noiseveil", *argv]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_module("noiseveil.app.cli", run_name="__main__", alter_sys=True)
                code = None
            except SystemExit as exc:
                code = exc.code
            except BaseException:
                code = "uncaught"
                traceback.print_exc()
        results[name] = [code, out.getvalue(), err.getvalue()]
    print(json.dumps(results))
    """
)

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)
HELP_CASES = {"help:": ["--help"]} | {f"help:{c}": [c, "--help"] for c in SUBCOMMANDS}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_cli(args, cwd=cwd, timeout=180)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("cli")
    key = SecretKey.generate()
    key.save(work / "good.key")
    (work / "garbage.key").write_text("this is not a key\n")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(work / "a.png")
    (work / "notes.txt").write_text("plain text, not a PNG\n")
    (work / "bad.pt").write_bytes(b"not a TorchScript archive")
    pixels = np.zeros((28, 28, 1), np.uint8)
    write_ciphertext(
        work / "unknown-model.png",
        Ciphertext(pixels, "ric", "no-such-model", key.key_id, {"nonce": "00" * 16}).seal(key),
    )
    return work


@pytest.fixture(scope="module")
def results(workdir: Path) -> dict[str, list[subprocess.CompletedProcess]]:
    def job(commands: list[list[str]]) -> list[subprocess.CompletedProcess]:
        return [run(args, workdir) for args in commands]  # sequential within a case

    def driver_job() -> subprocess.CompletedProcess:
        cases = json.dumps(EXTRA_CASES | HELP_CASES)
        script = [sys.executable, "-c", DRIVER_SCRIPT, cases]
        return subprocess.run(script, cwd=workdir, env=ENV, capture_output=True, text=True, timeout=180)

    with ThreadPoolExecutor(max_workers=2) as pool:  # a shared 2-core machine: two at a time
        driver = pool.submit(driver_job)
        futures = {name: pool.submit(job, commands) for name, commands in CASES.items()}
        out = {name: f.result() for name, f in futures.items()}
        proc = driver.result()
    assert proc.returncode == 0, proc.stderr
    for name, (code, stdout, stderr) in json.loads(proc.stdout).items():
        out[name] = [subprocess.CompletedProcess(EXTRA_CASES.get(name), code, stdout, stderr)]
    return out


def assert_one_line_error(proc: subprocess.CompletedProcess, command: str, *needles: str) -> str:
    assert proc.returncode == EXIT_ERROR, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith(f"noiseveil {command}: error: "), line
    for needle in needles:
        assert needle in line, line
    return line


def test_keygen_twice(results: dict, workdir: Path) -> None:
    first, second = results["keygen-twice"]
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    key = SecretKey.load(workdir / "new.key")  # mode 0600: no warning
    assert first.stdout.startswith(f"wrote new.key (key id {key.key_id}, mode 0600)")
    assert key.material.hex() not in first.stdout
    assert oct((workdir / "new.key").stat().st_mode & 0o777) == "0o600"
    assert_one_line_error(second, "keygen", "new.key: exists; refusing to overwrite a key file")
    assert second.stdout == ""
    # the first key survived: same key id as the one first reported
    assert SecretKey.load(workdir / "new.key").key_id == key.key_id


def test_encrypt_missing_key(results: dict, workdir: Path) -> None:
    (proc,) = results["encrypt-missing-key"]
    line = assert_one_line_error(proc, "encrypt", "missing.key: key file not found")
    assert line == "noiseveil encrypt: error: missing.key: key file not found"
    assert not (workdir / "out1").exists()


def test_encrypt_garbage_key(results: dict, workdir: Path) -> None:
    (proc,) = results["encrypt-garbage-key"]
    assert_one_line_error(proc, "encrypt", "garbage.key: not a noiseveil key file")
    assert not (workdir / "out2").exists()


def test_encrypt_unknown_model(results: dict, workdir: Path) -> None:
    (proc,) = results["encrypt-unknown-model"]
    assert_one_line_error(proc, "encrypt", "no model 'no-such-model' in the zoo", "shipped: ")
    assert not (workdir / "out3").exists()


def test_classify_unknown_model(results: dict) -> None:
    (proc,) = results["classify-unknown-model"]
    assert_one_line_error(proc, "classify", "no model 'no-such-model' in the zoo")
    assert proc.stdout == ""


def test_decrypt_not_png(results: dict, workdir: Path) -> None:
    """A per-file failure: exit 1, one FAILED line naming the file, then the summary."""
    (proc,) = results["decrypt-not-png"]
    assert proc.returncode == EXIT_FAILED_FILES, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("FAILED notes.txt: not a readable PNG"), lines[0]
    assert lines[1] == "decrypt: 0 of 1 files done, 1 failed"
    assert not (workdir / "rec1.png").exists()


def test_encrypt_bad_torchscript(results: dict, workdir: Path) -> None:
    (proc,) = results["encrypt-bad-torchscript"]
    assert_one_line_error(proc, "encrypt", "bad.pt: not a TorchScript model")
    assert not (workdir / "out4").exists()


def test_classify_missing_input(results: dict) -> None:
    (proc,) = results["classify-missing-input"]
    line = assert_one_line_error(proc, "classify")
    assert line == "noiseveil classify: error: missing-folder: no such file or folder"


def test_decrypt_missing_key(results: dict, workdir: Path) -> None:
    (proc,) = results["decrypt-missing-key"]
    assert_one_line_error(proc, "decrypt", "missing.key: key file not found")
    assert not (workdir / "rec3.png").exists()


def test_decrypt_unknown_model(results: dict, workdir: Path) -> None:
    (proc,) = results["decrypt-unknown-model"]
    assert proc.returncode == EXIT_FAILED_FILES, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("FAILED unknown-model.png: no model 'no-such-model' in the zoo")
    assert lines[1] == "decrypt: 0 of 1 files done, 1 failed"
    assert not (workdir / "rec2.png").exists()


def test_every_help_exits_zero(results: dict) -> None:
    assert {"keygen", "encrypt", "classify", "decrypt", "evaluate", "demo", "models"} <= set(SUBCOMMANDS)
    for name in HELP_CASES:
        (proc,) = results[name]
        command = name.removeprefix("help:")
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stderr == "", name
        assert proc.stdout.startswith(f"usage: noiseveil {command}".rstrip()), proc.stdout[:80]
    top = results["help:"][0].stdout
    for command in SUBCOMMANDS:
        assert command in top


def test_report_unknown_model(results: dict, workdir: Path) -> None:
    """A typo in --models stops the report before any attack runs or any file is written."""
    (proc,) = results["report-unknown-model"]
    assert_one_line_error(proc, "report", "not a shipped RIC model: ric-nope", "shipped: ")
    assert not (workdir / "sec-out").exists()


def test_a_missing_key_is_one_clear_line(results: dict, workdir: Path) -> None:
    (enc,) = results["encrypt-without-key"]
    assert_one_line_error(
        enc, "encrypt", "model ric-mnist needs a key: -k KEY", "noiseveil keygen --model ric-mnist"
    )
    assert not (workdir / "out5").exists()
    (dec,) = results["decrypt-without-key"]  # refused once at the start too, not a FAILED line per file
    line = assert_one_line_error(dec, "decrypt", "unknown-model.png was encrypted with a key: -k KEY")
    assert "FAILED" not in line
    assert not (workdir / "rec4.png").exists()


def test_report_stages_are_checked_before_any_work(results: dict, workdir: Path) -> None:
    (etc_proc,) = results["report-stages-of-etc"]
    assert_one_line_error(etc_proc, "report", "--stages is for the ric and avp reports")
    (avp_proc,) = results["report-unknown-avp-stage"]
    assert_one_line_error(avp_proc, "report", "unknown report stage table 3", "fig. 7, security")
    assert not (workdir / "etc-out").exists() and not (workdir / "avp-out").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["encrypt", "x", "-o", "y", "-k", "k", "--batch-size", "0"],
        ["decrypt", "x", "-o", "y", "-k", "k", "--batch-size", "-1"],
        ["evaluate", "-n", "0"],
        ["evaluate", "-n", "-5"],
        ["classify", "x", "--batch-size", "many"],
    ],
)
def test_invalid_numbers_are_one_line_and_exit_2(argv, capsys):
    from noiseveil.app.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("too small" in err or "not an integer" in err)


def test_a_key_file_as_classifier_is_named_not_dumped(tmp_path, capsys):
    from noiseveil.app.cli import main

    key = tmp_path / "my.key"
    SecretKey.generate().save(key)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["classify", str(tmp_path), "--classifier", str(key)]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.endswith("my.key: not a TorchScript model (save one with torch.jit.save)")
    assert "Pytorch" not in err and len(err.splitlines()) == 1


def test_a_classifier_id_where_a_scheme_model_is_needed(tmp_path, capsys):
    from noiseveil.app.cli import main

    key = tmp_path / "k.key"
    SecretKey.generate().save(key)
    assert main(["encrypt", str(tmp_path), "-o", str(tmp_path / "o"), "-k", str(key), "-m", "mnist-cnn"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'mnist-cnn' is a classifier, not a scheme model" in err and "?" not in err


def test_evaluate_shows_only_the_figures_that_mean_something(tmp_path, capsys):
    from noiseveil.app.cli import main

    out = tmp_path / "etc.json"
    assert main(["evaluate", "-m", "etc-cifar10-vit", "-n", "16", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "accuracy on ciphertexts %" in table and "ADP" not in table and "-100" not in table
    assert json.loads(out.read_text())["bit_exact_share"] == 1.0
    assert main(["evaluate", "-m", "ric-mnist", "-n", "16", "--out", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert "ADP %" in table and "label agreement %" in table
    assert json.loads((tmp_path / "r.json").read_text())["nae"]["steps"] > 0  # RIC's NAE settings


def test_evaluate_runs_a_scheme_that_keeps_labels_without_nae(tmp_path, capsys):
    """Issue 24: evaluate read every label-keeping scheme's NAE settings (``scheme.nae``), and AVP,
    which keeps the plaintext's label with a trained generator, has none: it crashed. The result
    records NAE settings only for a scheme that says it makes NAEs."""
    from noiseveil.app.cli import main

    out = tmp_path / "avp.json"
    assert main(["evaluate", "-m", "avp-cifar10", "-n", "2", "--out", str(out), "--quiet"]) == 0
    assert "label agreement %" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert "nae" not in result and result["images"] == 2 and result["encryption_failures"] == 0
    assert result["recovery_psnr_db"]["min"] >= 12.0  # the floor avp-cifar10 promises


def test_classify_reads_the_model_from_each_ciphertext(tmp_path, capsys):
    """EtC ciphertexts need their own cloud model: without -m it is read from each header, and
    -m with a scheme model id means that model's cloud classifier. Plain images need -m."""
    import noiseveil as nv
    from noiseveil.app.cli import main

    data = nv.load_dataset("cifar10")
    etc, ric = nv.load_scheme("etc-cifar10-vit"), nv.load_scheme("ric-cifar10")
    x = nv.data.to_tensor(data.x_test[:4])
    for i, ct in enumerate(etc.encrypt(x, etc.bound_key)):
        write_ciphertext(tmp_path / "c" / f"etc{i}.png", ct)
    for i, ct in enumerate(ric.encrypt(x, SecretKey.generate())):
        write_ciphertext(tmp_path / "c" / f"ric{i}.png", ct)
    Image.fromarray(data.x_test[0]).save(tmp_path / "c" / "plain.png")
    assert main(["classify", str(tmp_path / "c"), "--json", str(tmp_path / "l.json"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "plain.png: not a noiseveil ciphertext" in err and "name the classifier with -m" in err
    rows = {
        row["file"].split("/")[-1]: row
        for row in json.loads((tmp_path / "l.json").read_text())["predictions"]
    }
    assert {rows[f"etc{i}.png"]["classifier"] for i in range(4)} == {"etc-cifar10-vit"}
    assert {rows[f"ric{i}.png"]["classifier"] for i in range(4)} == {"ric-cifar10"}
    assert [rows[f"ric{i}.png"]["label"] for i in range(4)] == ric.cloud_classifier()(x).argmax(1).tolist()
    assert main(["classify", str(tmp_path / "c" / "etc0.png"), "-m", "etc-cifar10-vit", "--quiet"]) == 0
    assert capsys.readouterr().out.split("\t")[2].strip() in data.classes


def test_keygen_goes_through_the_scheme(tmp_path, capsys):
    from noiseveil.app.cli import main

    assert main(["keygen", str(tmp_path / "ric.key"), "--model", "ric-mnist"]) == 0
    assert "keep it secret" in capsys.readouterr().out
    SecretKey.load(tmp_path / "ric.key")
    assert main(["keygen", str(tmp_path / "etc.key"), "--model", "etc-cifar10-vit", "--demo"]) == 0
    assert "PUBLIC demo key of etc-cifar10-vit" in capsys.readouterr().out
    assert main(["keygen", str(tmp_path / "etc.key"), "--model", "etc-cifar10-vit"]) == 2  # never overwritten
    assert main(["keygen", str(tmp_path / "own.key"), "--model", "etc-cifar10-vit"]) == 0
    out = capsys.readouterr().out
    assert "keep it secret" in out and "classifies images of its own key only" in out
    assert load_key(tmp_path / "own.key").key_id != load_key(tmp_path / "etc.key").key_id


def test_models_shows_a_figure_that_means_something_for_every_model(capsys):
    from noiseveil.app.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    etc_lines = [line for line in out.splitlines() if line.startswith("etc-")]
    assert etc_lines and all("test acc" in line and "PSNR" not in line for line in etc_lines)
    assert "0.00 dB" not in out and "nan" not in out.lower()


def test_nae_settings_on_a_scheme_without_nae_are_one_line(tmp_path, capsys):
    from noiseveil.app.cli import main

    key = tmp_path / "k.key"
    assert main(["keygen", str(key), "--model", "etc-cifar10-vit", "--demo"]) == 0
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    argv = ["encrypt", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "-k", str(key)]
    assert main([*argv, "-m", "etc-cifar10-vit", "--nae-steps", "5"]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.endswith("makes no NAE: NAE settings do not apply") and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()
    # the learned RIC preset's NAE always starts from its keyed noise: no warm start to turn off
    assert main([*argv, "-m", "ric-cifar10-masked", "--cold-start"]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.endswith("(ric) has no NAE setting warm_start") and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_long_commands_say_what_they_do_before_any_work(tmp_path):
    """demo and report print their first line within seconds, before loading data or models."""
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "noiseveil.app.cli", "report", "etc", "--out", str(tmp_path / "r")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    start = time.perf_counter()
    try:
        first = proc.stdout.readline()
        elapsed = time.perf_counter() - start
    finally:
        proc.kill()
        proc.wait()
    assert first.startswith("report etc: budget default, which sets test images"), first
    assert elapsed < 20, elapsed


def test_a_dataset_of_another_shape_is_named_in_one_line(tmp_path, capsys):
    from noiseveil.app.cli import main

    argv = ["evaluate", "-m", "ric-lfw", "-d", "cifar10", "-n", "4", "--out", str(tmp_path / "e.json")]
    assert main(argv) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.endswith("a cifar10 test image is 32x32x3, model ric-lfw takes 64x64x3 (HxWxC)"), err
    assert "Traceback" not in err and not (tmp_path / "e.json").exists()
    assert err.splitlines()[-1].startswith("noiseveil evaluate: error: ")  # one line, after the progress line

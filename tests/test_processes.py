"""The file pipeline on worker processes of this machine (``--processes N``), through the CLI.

The same per-batch tasks as ``--ray`` (``noiseveil.app.distributed.run_batch``) on a pool of
spawned interpreters: the outputs, FAILED lines, labels and summary must be those of one
process, and a worker killed mid-run must lose no finished output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from conftest import digests, run_cli

from noiseveil.data import fixed_subset, load_dataset, read_image
from noiseveil.io.png import write_image

ETC = "etc-cifar10-convmixer"  # deterministic for a key: outputs compared bit for bit


def failed_lines(run: subprocess.CompletedProcess) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.startswith("FAILED")]


def write_test_images(folder: Path, n: int, seed: int) -> None:
    data = load_dataset("cifar10")
    for i in fixed_subset(len(data.x_test), n, seed=seed):
        write_image(folder / data.classes[data.y_test[i]] / f"{i:05d}.png", data.x_test[i])


def test_encrypt_classify_decrypt_on_processes_match_one_process(tmp_path) -> None:
    write_test_images(tmp_path / "plain", 10, seed=4)
    (tmp_path / "plain" / "notes.png").write_text("not an image")
    write_image(tmp_path / "plain" / "big.png", np.zeros((40, 32, 3), np.uint8))
    key = str(tmp_path / "k.key")
    assert run_cli(["keygen", key, "--model", ETC, "--demo"]).returncode == 0
    common = ["-m", ETC, "-k", key, "--batch-size", "3", "--quiet"]
    plain = str(tmp_path / "plain")
    one = run_cli(["encrypt", plain, "-o", str(tmp_path / "c1"), *common], threads=2)
    two = run_cli(["encrypt", plain, "-o", str(tmp_path / "c2"), *common, "--processes", "2"], threads=2)
    assert one.returncode == two.returncode == 1  # the two bad files
    assert digests(tmp_path / "c1") == digests(tmp_path / "c2") and len(digests(tmp_path / "c1")) == 10
    assert len(failed_lines(one)) == 2 and failed_lines(one) == failed_lines(two)
    summary = lambda p: p.stderr.splitlines()[-1].split(", ")[:2]  # noqa: E731 (not the rate)
    assert summary(one) == summary(two) == ["encrypt: 10 of 12 files done", "2 failed"]
    assert "Traceback" not in two.stderr

    labels = [
        run_cli(["classify", str(tmp_path / "c1"), "--batch-size", "4", "--quiet", *extra], threads=2)
        for extra in ([], ["--processes", "2"])
    ]
    assert labels[0].returncode == labels[1].returncode == 0
    assert labels[0].stdout == labels[1].stdout and len(labels[0].stdout.splitlines()) == 10

    args = ["decrypt", str(tmp_path / "c2"), "-o", str(tmp_path / "r"), "-k", key, "--batch-size", "3"]
    assert run_cli([*args, "--quiet", "--processes", "2"], threads=2).returncode == 0
    for r in sorted((tmp_path / "r").rglob("*.png")):
        assert np.array_equal(read_image(r), read_image(tmp_path / "plain" / r.relative_to(tmp_path / "r")))

    both = run_cli([*args, "--ray", "--processes", "2"])
    assert both.returncode == 2 and "not allowed with argument" in both.stderr.splitlines()[-1]


def spawned_workers(parent: int) -> list[int]:
    """The pool's worker processes among ``parent``'s children (not its resource tracker)."""
    workers = []
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if f"\nPPid:\t{parent}\n" in status and b"spawn_main" in command:
            workers.append(int(entry.name))
    return workers


def test_a_killed_worker_process_loses_no_finished_output_and_the_rerun_completes_the_rest(tmp_path) -> None:
    """RIC (masked preset: slow enough to be caught mid-run) on two worker processes in batches
    of 2; one worker is SIGKILLed once the first output is linked. The run reports every file it
    did not finish as FAILED (no traceback), each output left is whole and decrypts, on worker
    processes to the same bytes as in one process, and --skip-existing does only the rest."""
    images = 24
    write_test_images(tmp_path / "plain", images, seed=8)
    key = str(tmp_path / "k.key")
    assert run_cli(["keygen", key, "--model", "ric-cifar10-masked"]).returncode == 0
    cipher = tmp_path / "c"
    command = ["encrypt", str(tmp_path / "plain"), "-o", str(cipher), "-k", key, "-m", "ric-cifar10-masked"]
    command += ["--batch-size", "2", "--quiet", "--processes", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    run = subprocess.Popen(
        [sys.executable, "-m", "noiseveil.app.cli", *command],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and run.poll() is None and time.monotonic() < deadline:
        workers = spawned_workers(run.pid)
        if workers and any(cipher.rglob("*.png")):
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    _, stderr = run.communicate(timeout=300)
    assert killed is not None, "the run ended before a worker could be killed"
    assert run.returncode == 1 and "Traceback" not in stderr, stderr
    done = len(digests(cipher))
    failed = [line for line in stderr.splitlines() if line.startswith("FAILED")]
    assert 0 < done < images and len(failed) == images - done, stderr
    assert all("worker lost (a worker process died)" in line for line in failed)

    # every output left decrypts, on worker processes to the bytes one process gives
    args = ["decrypt", str(cipher), "-k", key, "--batch-size", "2", "--quiet"]
    assert run_cli([*args, "-o", str(tmp_path / "r1")], threads=2).returncode == 0
    assert run_cli([*args, "-o", str(tmp_path / "r2"), "--processes", "2"], threads=2).returncode == 0
    assert digests(tmp_path / "r1") == digests(tmp_path / "r2") and len(digests(tmp_path / "r2")) == done

    before = digests(cipher)
    rerun = run_cli([*command, "--skip-existing"], threads=2)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{images - done} of {images} files done, 0 failed, {done} already done" in rerun.stderr
    after = digests(cipher)
    assert len(after) == images and all(after[name] == digest for name, digest in before.items())

"""Ray against one process, and a Ray worker killed mid-run, through the CLI as a user runs it.

    python scripts/measure_ray_faults.py      # writes results/benchmark/ray-fault.json

Starts a Ray head on this machine (``ray start --head``, two CPUs) and runs every command with
``--ray auto`` in a fresh process, one compute thread each:

1. Identical outputs: EtC (deterministic for a key) encrypt, classify and decrypt on Ray and in
   one process: ciphertext bytes, labels and recovered bytes compared; RIC (a fresh nonce per
   image, so ciphertexts differ) encrypted both ways, then both decrypted: recovered bytes and
   the cloud's labels compared. A second one-process encryption tells which schemes' bytes
   differ from run to run anyway.
2. Fault: RIC encryption on Ray in small batches; one worker running a batch is SIGKILLed as
   soon as the first output exists. Recorded: what the run reported, that every output it
   left decrypts to its plaintext bit for bit and no input changed; then ``--skip-existing``
   reruns and must do exactly the missing images and leave the finished ones untouched.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from noiseveil.app.cli import positive_int
from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.data import fixed_subset, load_dataset, read_image
from noiseveil.io.png import write_image

RAY = [sys.executable, "-m", "ray.scripts.scripts"]
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
KILL_ATTEMPTS = 3  # runs in which a worker is killed, until one kill interrupts unfinished work
DETERMINISTIC, RECOVERING = "etc-cifar10-convmixer", "ric-cifar10"


def start_local_head(num_cpus: int = 2) -> tuple[subprocess.CompletedProcess, int]:
    """``ray start --head`` on a free port, and the port; connect with the address ``auto``
    (or 127.0.0.1:PORT with RAY_AUTH_MODE=token: Ray starts it with token authentication)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [*RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1"]
    command += [f"--num-cpus={num_cpus}", "--include-dashboard=false"]
    # Token authentication whatever Ray's default (2.59 turned it on for `ray start` by itself,
    # 2.60 only when a token exists already), as on a real cluster: a fresh token in the
    # environment of this process, so the commands it starts have it too (with `auto`, Ray
    # finds it there; an explicit address also needs RAY_AUTH_MODE=token).
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    env = {**os.environ, **RAY_ENV, "RAY_AUTH_MODE": "token"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=180), port


def stop_local_head() -> None:
    subprocess.run([*RAY, "stop", "--force"], capture_output=True, env={**os.environ, **RAY_ENV}, timeout=120)


def kill_one_busy_worker() -> bool:
    """SIGKILL one Ray worker process that is running a batch (its title names the task)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid, _, args = line.strip().partition(" ")
        if "ray::run_batch" in args and "IDLE" not in args:
            os.kill(int(pid), signal.SIGKILL)
            return True
    return False


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.png"))
    }


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "noiseveil.app.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )


def failed_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("FAILED")]


def labels(run: subprocess.CompletedProcess) -> list[list[str]]:
    return [line.split("\t")[1:] for line in run.stdout.splitlines()]


def recovered_exactly(recovered: Path, plain: Path) -> int:
    """How many files under ``recovered`` equal their plaintext pixel for pixel."""
    return sum(
        np.array_equal(read_image(r), read_image(plain / r.relative_to(recovered)))
        for r in sorted(recovered.rglob("*.png"))
    )


def same_as_one_process(work: Path, plain: Path, model: str, batch: str) -> dict:
    key = work / f"{model}.key"
    keygen = ["keygen", str(key), "--model", model] + (["--demo"] if model == DETERMINISTIC else [])
    assert cli(*keygen).returncode == 0
    runs = {}
    for where, ray in (("one", []), ("ray", ["--ray", "auto"])):
        ct, rec = work / f"{model}-{where}-c", work / f"{model}-{where}-r"
        enc = cli(
            "encrypt", str(plain), "-o", str(ct), "-m", model, "-k", str(key), "--batch-size", batch, *ray
        )
        cls = cli("classify", str(ct), "--batch-size", batch, "--quiet", *ray)
        dec = cli("decrypt", str(ct), "-o", str(rec), "-k", str(key), "--batch-size", batch, "--quiet", *ray)
        runs[where] = (enc, cls, dec, digests(ct), digests(rec), recovered_exactly(rec, plain))
    (e1, c1, d1, ct1, r1, x1), (e2, c2, d2, ct2, r2, x2) = runs["one"], runs["ray"]
    again = work / f"{model}-one-again-c"
    cli(
        "encrypt", str(plain), "-o", str(again), "-m", model, "-k", str(key), "--batch-size", batch, "--quiet"
    )
    return {
        "model": model,
        "files": len(ct1),
        "exit_codes_one_process_vs_ray": [
            [e1.returncode, c1.returncode, d1.returncode],
            [e2.returncode, c2.returncode, d2.returncode],
        ],
        "ciphertext_bytes_identical": ct1 == ct2,
        # a scheme that draws a fresh nonce per image differs between two one-process runs too
        "one_process_rerun_ciphertexts_identical": ct1 == digests(again),
        "failed_lines_identical": failed_lines(e1.stderr) == failed_lines(e2.stderr),
        "summary_identical": e1.stderr.splitlines()[-1].split(", ")[:2]
        == e2.stderr.splitlines()[-1].split(", ")[:2],
        "labels_identical": labels(c1) == labels(c2) and len(labels(c1)) == len(ct1),
        "recovered_bytes_identical": r1 == r2,
        "recovered_exactly_one_process": x1,
        "recovered_exactly_ray": x2,
    }


def killed_worker(work: Path, plain: Path, images: int, batch: str) -> dict:
    key, out, rec = work / "fault.key", work / "fault-c", work / "fault-r"
    assert cli("keygen", str(key), "--model", RECOVERING).returncode == 0
    before = digests(plain)
    command = ["encrypt", str(plain), "-o", str(out), "-k", str(key), "-m", RECOVERING, "--batch-size", batch]
    command += ["--quiet", "--ray", "auto"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempts in range(1, KILL_ATTEMPTS + 1):  # noqa: B007 (reported below)
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "noiseveil.app.cli", *command], env=env, stderr=subprocess.PIPE, text=True
        )
        killed = False
        while proc.poll() is None and not killed:
            killed = bool(list(out.rglob("*.png"))) and kill_one_busy_worker()
            time.sleep(0.02)
        _, stderr = proc.communicate(timeout=1800)
        # A kill that lands after the batch linked its outputs loses nothing (they count as
        # done): nothing to finish, so the kill is tried again on a fresh run.
        if not killed or proc.returncode != 0:
            break
    done = digests(out)
    failed = failed_lines(stderr)
    decrypt = cli("decrypt", str(out), "-o", str(rec), "-k", str(key), "--quiet")
    rerun = cli(*command, "--skip-existing")
    after = digests(out)
    final = cli("decrypt", str(out), "-o", str(work / "fault-r2"), "-k", str(key), "--quiet")
    return {
        "model": RECOVERING,
        "images": images,
        "batch_size": int(batch),
        "worker_killed": killed,
        "attempts": attempts,
        "run_exit_code": proc.returncode,
        "outputs_left": len(done),
        "failed_lines": len(failed),
        "failed_lines_say_worker_lost": sum("worker lost" in line for line in failed),
        "traceback_printed": "Traceback" in stderr,
        "summary": stderr.strip().splitlines()[-1] if stderr.strip() else "",
        "inputs_unchanged": digests(plain) == before,
        "outputs_left_decrypt_exit_code": decrypt.returncode,
        "outputs_left_recovered_exactly": recovered_exactly(rec, plain),
        "rerun_exit_code": rerun.returncode,
        "rerun_summary": rerun.stderr.strip().splitlines()[-1],
        "finished_outputs_untouched_by_rerun": all(after[name] == digest for name, digest in done.items()),
        "outputs_after_rerun": len(after),
        "all_recovered_exactly_after_rerun": final.returncode == 0
        and recovered_exactly(work / "fault-r2", plain) == images,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=positive_int, default=64, help="CIFAR-10 test images (default: 64)")
    args = parser.parse_args()
    data = load_dataset("cifar10")
    work = Path(tempfile.mkdtemp(prefix="noiseveil-ray-fault-"))
    plain = work / "plain"
    for i in fixed_subset(len(data.x_test), args.images, seed=1):
        write_image(plain / data.classes[data.y_test[i]] / f"{i:05d}.png", data.x_test[i])
    started, _ = start_local_head()
    if started.returncode != 0:
        sys.exit(f"ray start failed: {started.stderr.strip().splitlines()[-1:]}")
    try:
        print("identical outputs ...", flush=True)
        identical = [same_as_one_process(work, plain, m, "8") for m in (DETERMINISTIC, RECOVERING)]
        print("a worker killed mid-run ...", flush=True)
        fault = killed_worker(work, plain, args.images, "2")
    finally:
        stop_local_head()
    result = {
        **provenance([data.source_id], [DETERMINISTIC, RECOVERING]),
        "identical_to_one_process": identical,
        "killed_worker": fault,
    }
    print(result, flush=True)
    write_result(RESULTS_DIR / "benchmark" / "ray-fault.json", result)


if __name__ == "__main__":
    main()

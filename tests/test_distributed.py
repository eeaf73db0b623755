"""The file pipeline on Ray (``--ray ADDRESS``), against the single-process run, through the CLI.

A local Ray instance started for this module (``ray start --head``, as an operator starts a
cluster's head) takes every command (``--ray auto``: the instance on this machine). The
shipped EtC model's encryption is deterministic for a key, so outputs are compared bit for
bit; the flagship RIC model's takes long enough to kill a worker mid-run. ``--ray`` without
an address (a Ray instance started by the command itself) is the same code after ``ray.init``.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from noiseveil.data import fixed_subset, load_dataset, read_image
from noiseveil.io.png import write_image

pytest.importorskip("ray", reason="Ray is not installed (pip install 'noiseveil[ray]')")

MODEL = "etc-cifar10-convmixer"
# RIC images of the killed-worker run, in batches of two: twelve batches, so that batches are
# still running for the kill to find after the first output appears on a busy machine (with five,
# a loaded full suite once saw them all finish between two looks).
IMAGES = 24

# The committed measurement (scripts/measure_ray_faults.py) and these tests share how a local
# head is started and a busy worker found and killed.
_spec = importlib.util.spec_from_file_location(
    "measure_ray_faults", Path(__file__).resolve().parents[1] / "scripts" / "measure_ray_faults.py"
)
faults = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(faults)


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head on this machine, two CPUs, stopped after the module; its port."""
    started, port = faults.start_local_head(num_cpus=2)
    if started.returncode != 0:  # say why, rather than fail every test for the machine's sake
        pytest.skip(f"ray start failed here: {started.stderr.strip().splitlines()[-1:]}")
    yield port  # the commands use "auto": Ray's address for the instance running on this machine
    faults.stop_local_head()


digests = faults.digests


def cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli(list(args), threads=1, timeout=600)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """10 CIFAR-10 test images in class folders, two files that are not images, the demo key."""
    work = tmp_path_factory.mktemp("ray")
    data = load_dataset("cifar10")
    for i in fixed_subset(len(data.x_test), 10, seed=4):
        write_image(work / "plain" / data.classes[data.y_test[i]] / f"{i:05d}.png", data.x_test[i])
    (work / "plain" / "notes.png").write_text("not an image")
    write_image(work / "plain" / "big.png", np.zeros((40, 32, 3), np.uint8))
    assert cli("keygen", str(work / "k.key"), "--model", MODEL, "--demo").returncode == 0
    return work


def test_encrypt_classify_decrypt_on_ray_match_one_process(folder, ray_head) -> None:
    common = ["-m", MODEL, "-k", str(folder / "k.key"), "--batch-size", "3", "--quiet"]
    one = cli("encrypt", str(folder / "plain"), "-o", str(folder / "c1"), *common)
    ray = cli("encrypt", str(folder / "plain"), "-o", str(folder / "c2"), *common, "--ray", "auto")
    assert one.returncode == ray.returncode == 1  # the two bad files
    assert digests(folder / "c1") == digests(folder / "c2") and len(digests(folder / "c1")) == 10
    failed = [line for line in one.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 2 and failed == [
        line for line in ray.stderr.splitlines() if line.startswith("FAILED")
    ]
    summary = lambda p: p.stderr.splitlines()[-1].split(", ")[:2]  # noqa: E731 (not the rate)
    assert summary(one) == summary(ray) == ["encrypt: 10 of 12 files done", "2 failed"]

    labels = [
        cli("classify", str(folder / c), "--batch-size", "4", "--quiet", *r)
        for c, r in (("c1", []), ("c2", ["--ray", "auto"]))
    ]
    assert labels[0].returncode == labels[1].returncode == 0
    assert [ln.split("\t")[1:] for ln in labels[0].stdout.splitlines()] == [
        ln.split("\t")[1:] for ln in labels[1].stdout.splitlines()
    ]

    key = ["-k", str(folder / "k.key"), "--batch-size", "3", "--quiet"]
    assert cli("decrypt", str(folder / "c1"), "-o", str(folder / "r1"), *key).returncode == 0
    assert cli("decrypt", str(folder / "c2"), "-o", str(folder / "r2"), *key, "--ray", "auto").returncode == 0
    assert digests(folder / "r1") == digests(folder / "r2")
    recovered = sorted((folder / "r2").rglob("*.png"))
    assert all(
        np.array_equal(read_image(r), read_image(folder / "plain" / r.relative_to(folder / "r2")))
        for r in recovered
    )


def test_a_file_list_on_ray_does_only_its_files_as_one_process_does(folder, ray_head) -> None:
    """``--files-from``: the listed files only (a missing one is a FAILED line), the same bytes
    and lines on Ray as in one process. Ray by explicit address here, as a cluster's users give
    it: Ray starts the head with token authentication, so the driver says RAY_AUTH_MODE=token."""
    images = sorted(p.relative_to(folder / "plain").as_posix() for p in (folder / "plain").glob("*/*.png"))
    listed = [*images[:3], "nowhere/missing.png"]
    (folder / "list.txt").write_text("\n".join(listed) + "\n")
    common = ["-m", MODEL, "-k", str(folder / "k.key"), "--files-from", str(folder / "list.txt"), "--quiet"]
    one = cli("encrypt", str(folder / "plain"), "-o", str(folder / "l1"), *common)
    address = ["--ray", f"127.0.0.1:{ray_head}"]
    command = ["encrypt", str(folder / "plain"), "-o", str(folder / "l2"), *common, *address]
    ray = run_cli(command, threads=1, env={"RAY_AUTH_MODE": "token"}, timeout=600)
    assert one.returncode == ray.returncode == 1
    assert digests(folder / "l1") == digests(folder / "l2") and set(digests(folder / "l1")) == set(images[:3])
    failed = [line for line in one.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "missing.png" in failed[0]
    assert failed == [line for line in ray.stderr.splitlines() if line.startswith("FAILED")]


def test_a_lost_batch_counts_only_the_outputs_it_linked_during_the_run(tmp_path) -> None:
    """A worker killed between linking its outputs and returning: the files it finished are
    done; one that was there before the run, or never came, fails; lost labels all fail."""
    from noiseveil.app.distributed import Job, _lost_batch

    pairs = [(tmp_path / f"in{i}.png", tmp_path / f"out{i}.png") for i in range(3)]
    pairs[0][1].write_bytes(b"there before the run")
    existed = {pairs[0][1]}
    pairs[1][1].write_bytes(b"linked by the worker")
    report = _lost_batch(Job("encrypt", "m"), pairs, existed, "ActorDiedError")
    assert report.done == 1
    assert [src for src, _ in report.failures] == [pairs[0][0], pairs[2][0]]
    assert all("worker lost (ActorDiedError)" in reason for _, reason in report.failures)
    lost = _lost_batch(Job("classify", "m"), [src for src, _ in pairs], set(), "ActorDiedError")
    assert lost.done == 0 and len(lost.failures) == 3


def test_a_killed_worker_loses_no_finished_output_and_the_rerun_completes_the_rest(
    tmp_path, ray_head
) -> None:
    """RIC encryption on Ray, batches of 2; one worker is SIGKILLed while batches are running:
    what its batch had not linked is reported FAILED (not retried), every output written is whole
    and decrypts, no input is touched; --skip-existing then encrypts only what is missing."""
    data = load_dataset("cifar10")
    for i in fixed_subset(len(data.x_test), IMAGES, seed=8):
        write_image(tmp_path / "plain" / f"{i:05d}.png", data.x_test[i])
    r = faults.killed_worker(tmp_path, tmp_path / "plain", IMAGES, "2")
    assert r["worker_killed"], "no Ray worker running a batch was found"
    assert r["run_exit_code"] == 1 and r["failed_lines_say_worker_lost"] >= 1, r
    assert not r["traceback_printed"] and r["inputs_unchanged"]
    done = r["outputs_left"]
    assert 0 < done < IMAGES and r["failed_lines"] == IMAGES - done, r
    assert r["outputs_left_decrypt_exit_code"] == 0 and r["outputs_left_recovered_exactly"] == done
    left = IMAGES - done
    assert r["rerun_exit_code"] == 0
    assert f"{left} of {IMAGES} files done, 0 failed, {done} already done" in r["rerun_summary"], r
    assert r["finished_outputs_untouched_by_rerun"] and r["outputs_after_rerun"] == IMAGES
    assert r["all_recovered_exactly_after_rerun"]


def test_photos_of_several_sizes_on_ray_match_one_process(tmp_path, ray_head) -> None:
    """ric-imagenet on Ray: real photos of four sizes (grey and colour) in batches of 2, each
    worker loading the photo card; labels as one process gives them, the plaintexts' labels,
    every photo recovered bit for bit."""
    from noiseveil.data import load_photos

    for name, image in load_photos():
        if name in ("chelsea", "coins", "coffee", "moon"):
            write_image(tmp_path / "plain" / f"{name}.png", image)
    key = tmp_path / "k.key"
    assert cli("keygen", str(key), "--model", "ric-imagenet").returncode == 0
    ray = ["--ray", "auto", "--batch-size", "2", "--quiet"]
    plain, cipher = str(tmp_path / "plain"), str(tmp_path / "c")
    enc = cli("encrypt", plain, "-o", cipher, "-k", str(key), "-m", "ric-imagenet", *ray)
    assert enc.returncode == 0 and "4 of 4 files done, 0 failed" in enc.stderr, enc.stderr
    on_ray = cli("classify", str(tmp_path / "c"), *ray)
    here = cli("classify", str(tmp_path / "plain"), "-m", "imagenet-squeezenet", "--quiet")
    assert on_ray.returncode == here.returncode == 0, on_ray.stderr
    assert [ln.split("\t")[1:] for ln in on_ray.stdout.splitlines()] == [
        ln.split("\t")[1:] for ln in here.stdout.splitlines()
    ]
    assert (
        cli("decrypt", str(tmp_path / "c"), "-o", str(tmp_path / "r"), "-k", str(key), *ray).returncode == 0
    )
    for path in (tmp_path / "plain").iterdir():
        assert np.array_equal(read_image(tmp_path / "r" / path.name), read_image(path))


def test_a_users_own_card_on_ray(tmp_path, ray_head) -> None:
    """Workers started by `ray start` do not share the driver's environment: the job carries
    the driver's user zoo, so a card only that zoo holds encrypts and classifies on Ray."""
    import torch
    from torch import nn

    from noiseveil.data import load_photos

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)
    )
    torch.jit.save(torch.jit.trace(net.eval(), torch.rand(2, 3, 40, 40)), str(tmp_path / "net.pt"))
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    for name, image in load_photos():
        if name in ("chelsea", "camera"):
            write_image(tmp_path / "plain" / f"{name}.png", image)
    env = {"NOISEVEIL_WEIGHTS": str(tmp_path / "zoo")}
    run = lambda *args: run_cli(list(args), env=env, timeout=600)  # noqa: E731
    added = run(
        "model",
        "add",
        "mine",
        "--classifier",
        str(tmp_path / "net.pt"),
        "--labels",
        str(tmp_path / "labels.txt"),
        "--input-size",
        "40",
    )
    assert added.returncode == 0, added.stderr
    key = tmp_path / "k.key"
    assert run("keygen", str(key), "--model", "ric-mine").returncode == 0
    ray = ["--ray", "auto", "--quiet"]
    enc = run(
        "encrypt", str(tmp_path / "plain"), "-o", str(tmp_path / "c"), "-k", str(key), "-m", "ric-mine", *ray
    )
    assert enc.returncode == 0, enc.stderr
    on_ray, here = (
        run("classify", str(tmp_path / "c"), *ray),
        run("classify", str(tmp_path / "plain"), "-m", "mine"),
    )
    assert on_ray.returncode == here.returncode == 0, on_ray.stderr
    assert [ln.split("\t")[1:] for ln in on_ray.stdout.splitlines()] == [
        ln.split("\t")[1:] for ln in here.stdout.splitlines()
    ]

"""Images/s of the file pipeline in one process and on Ray with 1 and 2 workers, in one run.

    python scripts/benchmark_ray.py      # writes results/benchmark/ray-pipeline.json

RIC encryption (the expensive, embarrassingly parallel part: the NAE and the self-check per
image) of the same CIFAR-10 test images, batch by batch, into fresh folders: one process with
the machine's threads and with one thread, then Ray tasks on a local instance of 1 and of 2
workers (one thread each). Every configuration runs once untimed first (one process: model
load and first-call costs; Ray: that first job is reported as "cold", it starts the workers and
loads the model in each), then --repeats timed runs whose median is reported. The overhead per
batch is (one Ray worker's time - one single-threaded process's time) / batches, for RIC and
for EtC, whose per-image work is a block permutation.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from noiseveil.app.cli import positive_int
from noiseveil.app.distributed import Job, run_on_ray
from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result
from noiseveil.data import fixed_subset, load_dataset
from noiseveil.io.png import write_image
from noiseveil.pipeline import encrypt_files, plan
from noiseveil.zoo import load_scheme

HEAVY, LIGHT = "ric-cifar10", "etc-cifar10-convmixer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=positive_int, default=512, help="images encrypted per run (default: 512)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=16, help="images per task (default: 16)")
    parser.add_argument(
        "--repeats", type=positive_int, default=3, help="timed runs per configuration (default: 3)"
    )
    args = parser.parse_args()
    data = load_dataset("cifar10")
    work = Path(tempfile.mkdtemp(prefix="noiseveil-ray-bench-"))
    for i in fixed_subset(len(data.x_test), args.images, seed=0):
        write_image(work / "plain" / f"{i:05d}.png", data.x_test[i])
    runs: list[dict] = []

    folders = iter(range(1_000_000))

    def once(model_id: str, fn) -> float:
        pairs = plan(work / "plain", work / f"out-{next(folders)}")
        start = time.perf_counter()
        report = fn(model_id, pairs)
        seconds = time.perf_counter() - start
        assert report.done == len(pairs) == args.images, report.summary()
        return seconds

    def timed(name: str, model_id: str, workers: int | None, threads: int | None, fn, repeats: int) -> float:
        seconds = statistics.median(once(model_id, fn) for _ in range(repeats))
        runs.append(
            {
                "run": name,
                "model_id": model_id,
                "ray_workers": workers,
                "torch_threads": threads,
                "images": args.images,
                "batches": -(-args.images // args.batch_size),
                "timed_runs": repeats,
                "median_seconds": seconds,
                "images_per_second": args.images / seconds,
            }
        )
        print(runs[-1], flush=True)
        return seconds

    def warm_then_timed(name: str, model_id: str, workers: int | None, threads: int | None, fn) -> float:
        once(model_id, fn)  # untimed: first-call costs
        return timed(name, model_id, workers, threads, fn, args.repeats)

    def one_process(threads: int):
        def run(model_id, pairs):
            torch.set_num_threads(threads)
            scheme = load_scheme(model_id)
            return encrypt_files(scheme, scheme.demo_key(), pairs, args.batch_size, progress=False)

        return run

    default_threads = torch.get_num_threads()
    for model_id in (HEAVY, LIGHT):
        load_scheme(model_id).demo_key()  # warm the zoo cache: not part of any timing
    single = {
        (m, t): warm_then_timed(f"one process, {t} thread(s)", m, None, t, one_process(t))
        for m in (HEAVY, LIGHT)
        for t in sorted({1, default_threads})
    }
    import ray

    ray_runs = {}
    for workers in (1, 2):
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")

        def on_ray(model_id, pairs):
            scheme = load_scheme(model_id)
            return run_on_ray(
                Job("encrypt", model_id), scheme.demo_key(), pairs, args.batch_size, progress=False
            )

        timed(f"Ray, {workers} worker(s), cold", HEAVY, workers, 1, on_ray, repeats=1)
        ray_runs[workers] = {
            m: warm_then_timed(f"Ray, {workers} worker(s), warm", m, workers, 1, on_ray)
            for m in (HEAVY, LIGHT)
        }
        ray.shutdown()
    batches = -(-args.images // args.batch_size)
    result = {
        **provenance([data.source_id], [HEAVY, LIGHT]),
        "batch_size": args.batch_size,
        "runs": runs,
        "speedup_2_workers_over_1": ray_runs[1][HEAVY] / ray_runs[2][HEAVY],
        "speedup_2_workers_over_one_process": single[HEAVY, default_threads] / ray_runs[2][HEAVY],
        # one Ray worker against one process on one thread: the same work, one at a time
        "overhead_per_batch_seconds": {m: (ray_runs[1][m] - single[m, 1]) / batches for m in (HEAVY, LIGHT)},
    }
    write_result(RESULTS_DIR / "benchmark" / "ray-pipeline.json", result)


if __name__ == "__main__":
    main()

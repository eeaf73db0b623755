"""Peak memory of `noiseveil encrypt` on folders of 1,000 and 10,000 images (streaming check).

    python scripts/benchmark_memory.py --model ric-cifar10 --sizes 1000 10000

Writes the CIFAR-10 test images as PNG files into out/bench-memory/plain-<N>/, runs the real
CLI on each folder in a child process, samples the child's resident memory (VmRSS) every
second and takes its peak from wait4(). Flat memory means the peak does not grow with N.
Writes results/benchmark/memory-<model>.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from noiseveil.app.provenance import REPO_ROOT, RESULTS_DIR, provenance, write_result
from noiseveil.data import load_dataset
from noiseveil.io.png import write_image
from noiseveil.zoo import read_manifest


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_encrypt(folder: Path, out: Path, key: Path, model: str) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "noiseveil.app.cli",
        "encrypt",
        str(folder),
        "-o",
        str(out),
        "-k",
        str(key),
        "-m",
        model,
        "--quiet",
    ]
    log = out.parent / f"{out.name}.log"
    start = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stderr=err)
        samples: list[float] = []
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # reaps the child with its rusage
            if pid:
                break
            value = rss_mb(proc.pid)
            if value is not None:
                samples.append(round(value, 1))
            time.sleep(1.0)
    seconds = time.perf_counter() - start
    return {
        "returncode": os.waitstatus_to_exitcode(status),
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "rss_samples_mb": samples,
        "summary": log.read_text().strip().splitlines()[-1:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="ric-cifar10")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    args = parser.parse_args()

    dataset = read_manifest()[args.model]["dataset"]
    data = load_dataset(dataset)
    work = REPO_ROOT / "out" / "bench-memory"
    if work.exists():
        shutil.rmtree(work)  # our own scratch folder from an earlier run
    work.mkdir(parents=True)
    key = work / "bench.key"
    subprocess.run([sys.executable, "-m", "noiseveil.app.cli", "keygen", str(key)], check=True)
    runs = []
    for n in args.sizes:
        n = min(n, len(data.x_test))
        folder = work / f"plain-{n}"
        for i in range(n):  # 100 per subfolder, as a real photo archive would be laid out
            sub = folder / f"{i // 100:03d}"
            sub.mkdir(parents=True, exist_ok=True)
            write_image(sub / f"{i:05d}.png", data.x_test[i])
        run = run_encrypt(folder, work / f"cipher-{n}", key, args.model)
        run["images"] = n
        runs.append(run)
        print(f"{n} images: peak RSS {run['peak_rss_mb']:.0f} MB, {run['seconds']:.0f}s, {run['summary']}")
        shutil.rmtree(folder)
        shutil.rmtree(work / f"cipher-{n}", ignore_errors=True)
    result = {
        **provenance([data.source_id], [args.model]),
        "child_omp_num_threads": os.environ.get("OMP_NUM_THREADS", "default"),
        "note": "peak RSS is the figure; times depend on threads and on other load on the machine",
        "runs": runs,
    }
    out = RESULTS_DIR / "benchmark" / f"memory-{args.model}.json"
    write_result(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""The file pipeline on Ray: its cost against one process (``python scripts/benchmark_ray.py``) and
identical outputs and a killed worker (``python scripts/measure_ray_faults.py``)."""

from __future__ import annotations

from typing import Any

from noiseveil.app.reports.markdown import Results, from_file, table, yes

READS = ("benchmark/ray-pipeline.json", "benchmark/ray-fault.json")


@from_file("benchmark/ray-pipeline.json")
def pipeline(results: Results, name: str, r: dict[str, Any]) -> str:
    """Images/s of each configuration and the overhead per batch."""
    rows = [
        [
            run["run"],
            f"`{run['model_id']}`",
            f"{run['images_per_second']:.1f}",
            f"{run['median_seconds']:.2f} s"
            + (f" (median of {run['timed_runs']})" if run["timed_runs"] > 1 else ""),
        ]
        for run in r["runs"]
    ]
    overhead = ", ".join(f"`{m}` {1000 * s:.0f} ms" for m, s in r["overhead_per_batch_seconds"].items())
    return (
        f"**The file pipeline on Ray** (`{r['command']}`, {results.link(name)}; encryption of the same "
        f"{r['runs'][0]['images']} CIFAR-10 test images, {r['batch_size']} per batch = per task, "
        f"{r['machine']['cpu_count']} CPU cores, one run). RIC on 2 Ray workers is "
        f"{r['speedup_2_workers_over_1']:.2f}x one worker and "
        f"{r['speedup_2_workers_over_one_process']:.2f}x one process using both cores (PyTorch's "
        "threads parallelise one small batch less well than two processes do). Overhead per "
        f'batch, one worker against one single-threaded process: {overhead}. "cold" is a '
        "first job: Ray starts the workers and each loads the model.\n\n"
        + table(["configuration", "model", "images/s", "time"], rows)
    )


def _identical_row(run: dict[str, Any]) -> list[str]:
    same_bytes = (
        yes(run["ciphertext_bytes_identical"])
        if run["one_process_rerun_ciphertexts_identical"]
        else "differ, as two one-process runs do"
    )
    return [
        f"`{run['model']}`",
        str(run["files"]),
        same_bytes,
        yes(run["failed_lines_identical"] and run["summary_identical"]),
        yes(run["labels_identical"]),
        yes(run["recovered_bytes_identical"]),
        f"{run['recovered_exactly_ray']} of {run['files']}",
    ]


def _killed_worker(k: dict[str, Any]) -> str:
    return (
        f"SIGKILL of a busy worker during `{k['model']}` encryption of {k['images']} images "
        f"in batches of {k['batch_size']} (killed: {yes(k['worker_killed'])}): the run exited "
        f"{k['run_exit_code']} with {k['failed_lines']} `FAILED` lines "
        f"({k['failed_lines_say_worker_lost']} saying the worker was lost; no traceback: "
        f"{yes(not k['traceback_printed'])}) and left "
        f"{k['outputs_left']} outputs, of which {k['outputs_left_recovered_exactly']} decrypt to their "
        f"plaintext bit for bit; inputs unchanged: {yes(k['inputs_unchanged'])}. The `--skip-existing` "
        f'rerun: "{k["rerun_summary"]}"; finished outputs untouched: '
        f"{yes(k['finished_outputs_untouched_by_rerun'])}; all {k['images']} then decrypt exactly: "
        f"{yes(k['all_recovered_exactly_after_rerun'])}."
    )


@from_file("benchmark/ray-fault.json")
def faults(results: Results, name: str, r: dict[str, Any]) -> str:
    """Ray against one process (identical outputs) and a worker killed mid-run."""
    header = [
        "model",
        "files",
        "same ciphertext bytes",
        "same FAILED lines, summary",
        "same labels",
        "same recovered bytes",
        "recovered exactly (Ray)",
    ]
    return (
        f"**Ray against one process, and a worker killed** (`{r['command']}`, {results.link(name)}; every "
        "command a fresh CLI process, `--ray auto` on a local `ray start --head`). RIC draws a "
        "fresh nonce per image, so its ciphertexts differ from run to run by design; what they "
        "decrypt to and how the cloud labels them must not.\n\n"
        + table(header, [_identical_row(run) for run in r["identical_to_one_process"]])
        + "\n\n"
        + _killed_worker(r["killed_worker"])
    )


def sections(results: Results) -> list[str]:
    return pipeline(results) + faults(results)

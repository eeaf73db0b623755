"""Throughput and memory on this machine: the file pipeline (``python scripts/benchmark_throughput.py``,
``scripts/benchmark_memory.py``) and AVP's cost (``scripts/benchmark_avp.py``)."""

from __future__ import annotations

from typing import Any

from noiseveil.app.reports.markdown import Results, from_file, table, yes

READS = (
    "benchmark/throughput-*.json",
    "benchmark/memory-*.json",
    "benchmark/avp-cost.json",
    "service/load-test.json",
    "benchmark/lossless-vs-masked-cifar10.json",
    "benchmark/photos.json",
)
SERVICE, LOSSLESS, PHOTOS = READS[3:]
# Issue 26's goals, each against the reference its own benchmark measures in the same run.
GOALS = {
    "service": 0.70,  # uploads/s at 8 clients over the forward pass alone, one image at a time
    "files_decrypt": 2000.0,  # lossless decryption through files at 32x32, images/s
    "encrypt": 300.0,  # lossless encryption at 32x32, images/s
    "photo_files": 0.80,  # photo decryption megapixels/s through files over the API's
}


def throughput(results: Results) -> list[str]:
    rows = []
    for name, r in results.matching("benchmark/throughput-*.json"):
        share = r["encrypt_stage_share"]
        rows.append(
            [
                f"`{r['models'][0]}`",
                "x".join(map(str, r["image_shape"])),
                str(r["batch_size"]),
                f"{r['encrypt_images_per_second']:.1f}",
                f"{r['decrypt_images_per_second']:.1f}",
                f"{100 * share['nae_attack']:.0f} %",
                f"{100 * share['feature_extractor_and_encoder']:.0f} %",
                results.link(name),
            ]
        )
    if not rows:
        return []
    header = ["model", "image", "batch", "encrypt img/s", "decrypt img/s", "NAE share", "F+E share", "JSON"]
    return [
        "**Throughput** (`python scripts/benchmark_throughput.py --model ID`, NAE included, "
        "2 CPU cores):\n\n" + table(header, rows)
    ]


def memory(results: Results) -> list[str]:
    rows, commands = [], []
    for name, r in results.matching("benchmark/memory-*.json"):
        commands.append(f"`{r['command']}`")
        rows += [
            [
                f"`{r['models'][0]}`",
                f"{run['images']:,}",
                f"{run['peak_rss_mb']:.0f} MB",
                f"{run['seconds'] / 60:.1f} min",
                results.link(name),
            ]
            for run in r["runs"]
        ]
    if not rows:
        return []
    return [
        f"**Memory while encrypting a folder** ({', '.join(commands)}):\n\n"
        + table(["model", "images in folder", "peak RSS", "time", "JSON"], rows)
    ]


@from_file("benchmark/avp-cost.json")
def avp_cost(results: Results, name: str, b: dict[str, Any]) -> str:
    rows = [
        [
            f"`{row['model_id']}`",
            str(row["iterations"]),
            f"{row['encrypt_seconds_per_image']:.2f}",
            f"{1000 * row['decrypt_seconds_per_image']:.2f}",
            f"{row['encrypt_to_decrypt_ratio']:.0f}x",
        ]
        for row in b["runs"]
    ]
    return (
        f"**AVP's cost on this machine** (`{b['command']}`, {results.link(name)}; {b['runs'][0]['images']} "
        "images per batch, self-check included):\n\n"
        + table(["model", "K", "encrypt s / image", "decrypt ms / image", "encrypt/decrypt"], rows)
    )


def floor(results: Results) -> str:
    """Each throughput figure against the reference its benchmark measured in the same run,
    beside issue 26's goal (a row per benchmark whose JSON exists)."""
    rows = _service_rows(results) + _lossless_rows(results) + _photo_rows(results)
    if not rows:
        return ""
    header = ["what", "measured", "reference, same run", "ratio", "goal", "met", "from"]
    return table(header, rows)


def _service_rows(results: Results) -> list[list[str]]:
    r = results.one(SERVICE)
    if r is None:
        return []
    alone = r["classification_floor"]["one_at_a_time"]["images_per_second"]
    rows = []
    for database, d in r["databases"].items():
        best, share = d["best"], d["best"]["share_of_floor_one_at_a_time"]
        rows.append(
            [
                f"service, {database}: uploads/s at {best['clients']} clients ({best['workers']} workers, "
                f"{best['batch_wait_ms']} ms wait; p99 {best['latency_ms']['p99']:.0f} ms)",
                f"{best['uploads_per_second']:.0f}",
                f"forward pass alone, one at a time: {alone:.0f} img/s",
                f"{100 * share:.0f} %",
                f"≥ {100 * GOALS['service']:.0f} %",
                yes(share >= GOALS["service"]),
                results.link(SERVICE),
            ]
        )
    return rows


def _lossless_rows(results: Results) -> list[list[str]]:
    r = results.one(LOSSLESS)
    if r is None:
        return []
    model = next(iter(r["rates"]))  # the lossless model comes first
    rates = r["rates"][model]
    size = "x".join(map(str, r["image_shape"][:2]))
    passes = ""
    if "attack_passes_per_image_later_batches" in rates:  # counted since the attack's warm starts
        passes = (
            f"; the attack's passes an image: {rates['attack_passes_per_image_first_batch']:.2f} in the "
            f"first batch, {rates['attack_passes_per_image_later_batches']:.2f} after it"
        )
    api = _goal_row(
        results,
        f"`{model}` encryption (API, self-check included{passes}), {size}, img/s",
        rates["encrypt_images_per_second"],
        f"one plain forward pass: {rates['plain_forward_images_per_second']:.0f} img/s",
        f"{rates['encrypt_seconds_over_one_forward']:.1f} passes",
        "encrypt",
    )
    return [
        *_file_rows(results, r, f"`{model}` decryption through files, {size}", "decrypt", "files_decrypt"),
        api,
        *_file_rows(results, r, f"`{model}` encryption through files, {size}", "encrypt", "encrypt"),
    ]


def _file_rows(results: Results, r: dict[str, Any], what: str, action: str, goal: str) -> list[list[str]]:
    """A row per file run of ``action`` the benchmark measured, against the API in the same run:
    on this disk in one process, into and out of RAM, on worker processes (a run an older
    benchmark lacks is left out)."""
    rates = next(iter(r["rates"].values()))
    processes = r.get("processes")
    runs = [
        ("one process", "files"),
        ("one process, files in RAM", "files_in_ram"),
        (f"{processes} worker processes, start-up included", f"files_{processes}_processes"),
    ]
    api = rates[f"{action}_images_per_second"]
    rows = []
    for how, run in runs:
        if f"{run}_{action}_images_per_second" not in rates:
            continue
        creation = _creation(rates) if (run, action) == ("files", "decrypt") else ""
        measured, ratio = rates[f"{run}_{action}_images_per_second"], rates[f"{run}_over_api_{action}"]
        reference = f"through the API: {api:.0f} img/s{creation}"
        rows.append(_goal_row(results, f"{what}, {how}, img/s", measured, reference, f"{ratio:.2f}", goal))
    return rows


def _goal_row(
    results: Results, what: str, measured: float, reference: str, ratio: str, goal: str
) -> list[str]:
    """A row of the lossless benchmark against its goal (images/s)."""
    met = yes(measured >= GOALS[goal])
    return [
        what,
        f"{measured:.0f}",
        reference,
        ratio,
        f"≥ {GOALS[goal]:.0f} img/s",
        met,
        results.link(LOSSLESS),
    ]


def _creation(rates: dict[str, float]) -> str:
    """What creating one file cost on the disk, measured before and after the file runs."""
    if "file_creation_ms" not in rates:
        return ""
    before, after = rates["file_creation_ms"], rates["file_creation_ms_after"]
    return f"; creating one file: {before:.2f} ms, then {after:.2f} ms"


def _photo_rows(results: Results) -> list[list[str]]:
    r = results.one(PHOTOS)
    if r is None:
        return []
    measured = [(photo["photo"], photo) for photo in r["photos"]]
    folder = r.get("folder_of_12mp_photos")
    if folder:  # each photo written while the next is decrypted
        measured.append((f"a folder of {folder['photos']} 12 MP photos", folder))
    rows = []
    for what, rates in measured:
        files, api = rates["decrypt_megapixels_per_second_files"], rates["decrypt_megapixels_per_second_api"]
        rows.append(
            [
                f"`{r['scheme_model']}` photo decryption through files, {what}, MP/s",
                f"{files:.1f}",
                f"through the API: {api:.1f} MP/s",
                f"{100 * files / api:.0f} %",
                f"≥ {100 * GOALS['photo_files']:.0f} %",
                yes(files / api >= GOALS["photo_files"]),
                results.link(PHOTOS),
            ]
        )
    return rows


def sections(results: Results) -> list[str]:
    part = floor(results)
    against = [f"**Against the floor** (issue 26's goals):\n\n{part}"] if part else []
    return against + throughput(results) + memory(results) + avp_cost(results)

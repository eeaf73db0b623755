"""What ``noiseveil demo`` printed and drew in a recorded run (results/demo/demo.json and the grids
copied beside it), for the getting-started page and the README's picture."""

from __future__ import annotations

from pathlib import Path

from noiseveil.app.reports.markdown import Results, table

READS = ("demo/demo.json",)
NAME = "demo/demo.json"


def printed_table(results: Results) -> list[str]:
    r = results.one(NAME)
    if r is None:
        return []
    header = list(r["rows"][0])
    rows = [[f"`{row['model']}`", *(row[k] for k in header[1:])] for row in r["rows"]]
    return [
        f"**What `noiseveil demo` printed** (`{r['command']}` at commit `{r['git_commit'][:7]}`, "
        f"{r['images_per_model']} test images per model; {results.link(NAME)}; '-' where a column "
        "does not apply: an EtC cloud model knows EtC images only, so its labels on plaintexts mean "
        "nothing, and TransNet does not recover):\n\n" + table(header, rows)
    ]


def grid(results: Results, model_id: str) -> str:
    """One recorded grid (plaintext | ciphertext | recovered rows) as a Markdown image."""
    name = f"demo/grid-{model_id}.png"
    return f"![{model_id}: plaintext, ciphertext, recovered]({results.path(name)})"


def grids(results: Results) -> list[str]:
    r = results.one(NAME)
    if r is None:
        return []
    models = [Path(g).stem.removeprefix("grid-") for g in r["grids"]]
    return [f"`{m}`:\n\n{grid(results, m)}" for m in models]


def sections(results: Results) -> list[str]:
    return printed_table(results) + grids(results)

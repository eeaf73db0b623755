"""The package as a user gets it (scripts/check_wheel.py: the wheel installed outside the checkout)
and as a developer reads it (scripts/draw_structure.py: the import structure and its cycles)."""

from __future__ import annotations

from noiseveil.app.reports.markdown import Results, table

WHEEL = "wheel/check.json"
STRUCTURE = "structure/imports.json"
READS = (WHEEL, STRUCTURE)


def wheel(results: Results) -> str:
    r = results.one(WHEEL)
    if r is None:
        return ""
    w = r["wheel"]
    rows = [
        [f"`{name}`", str(step["exit_code"]), f"{step['seconds']:.1f}", (step["last_lines"] or [""])[-1]]
        for name, step in r["steps"].items()
    ]
    return (
        f"**The wheel, installed outside the checkout** (`{r['command']}` at commit "
        f"`{r['git_commit'][:7]}`, {r['date'][:10]}; {results.link(WHEEL)}): `{w['file']}` is "
        f"{w['bytes'] / 2**20:.1f} MiB with {w['weights_files']} weights files "
        f"({w['weights_bytes_uncompressed'] / 2**20:.1f} MiB unpacked) as package data; "
        f"{'passed' if r['passed'] else '**failed**'}. Each step, in a new venv and a working "
        "folder of its own (the demo without data must fail in one line naming both data folders):"
        "\n\n" + table(["step", "exit", "seconds", "last line printed"], rows)
    )


def structure(results: Results) -> str:
    r = results.one(STRUCTURE)
    if r is None:
        return ""
    cycles = r["module_cycles"]
    listed = "".join(f"\n- {' <-> '.join(c)}" for c in cycles)
    picture = results.path(f"structure/{r['picture']}")
    return (
        f"**The import structure** (`{r['command']}` at commit `{r['git_commit'][:7]}`; "
        f"{results.link(STRUCTURE)}): {r['modules']} modules, {r['import_edges']} imports, "
        f"**{len(cycles)} import cycles** between modules and {len(r['group_cycles'])} between "
        f"subpackages.{listed}\n\n![noiseveil's import structure]({picture})"
    )


def sections(results: Results) -> list[str]:
    return [text for text in (wheel(results), structure(results)) if text]

"""Draw noiseveil's import structure and count its import cycles.

    python scripts/draw_structure.py

The module graph is grimp's (every ``import`` of a noiseveil module by another, including those
inside functions). A cycle is a strongly connected component of more than one module. The
drawing groups modules by subpackage (``noiseveil.schemes``, ``noiseveil.app.service``, ...)
and stacks the groups in layers: each group sits above everything it imports, library groups
in blue, application groups in orange. Writes results/structure/imports.json (modules, edges,
cycles, the group graph) and results/structure/imports.png.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import grimp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result  # noqa: E402

PACKAGE = "noiseveil"
# Groups one level deeper than the package: the application's parts are what a reader looks for.
SPLIT_DEEPER = ("noiseveil.app",)
Graph = Mapping[str, set[str]]  # module -> the modules it imports directly


@cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the noiseveil modules it imports directly (grimp: function-level imports too)."""
    built = grimp.build_graph("noiseveil", include_external_packages=False)
    return {m: set(built.find_modules_directly_imported_by(m)) for m in built.modules}


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph.get(module, ())):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def group_of(module: str) -> str:
    parts = module.split(".")
    depth = 3 if any(module.startswith(p + ".") for p in SPLIT_DEEPER) else 2
    return ".".join(parts[:depth]) if len(parts) >= depth else module


def layers(groups: list[str], edges: dict[str, set[str]]) -> dict[str, int]:
    """Each group's layer: one above the highest group it imports (group cycles are cut)."""
    level: dict[str, int] = {}

    def visit(group: str, path: frozenset[str]) -> int:
        if group in level:
            return level[group]
        below = [visit(d, path | {group}) for d in edges.get(group, ()) if d not in path]
        level[group] = 1 + max(below, default=-1)
        return level[group]

    for group in groups:
        visit(group, frozenset())
    return level


def reached(graph: Graph, start: str) -> set[str]:
    """Every module ``start`` imports, directly or through others."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += graph.get(module, ())
    return seen


def transitive_reduction(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The edges no longer path implies (of an acyclic graph): what the drawing can show legibly."""
    return {
        source: {t for t in targets if not any(t in reached(edges, o) for o in targets - {t})}
        for source, targets in edges.items()
    }


def draw(groups: list[str], edges: dict[str, set[str]], level: dict[str, int], path: Path) -> None:
    rows: dict[int, list[str]] = defaultdict(list)
    for group in sorted(groups):
        rows[level[group]].append(group)
    width = max(len(r) for r in rows.values())
    place = {g: ((i + 0.5) * width / len(row), lvl) for lvl, row in rows.items() for i, g in enumerate(row)}
    fig, ax = plt.subplots(figsize=(1.35 * width + 1, 0.8 * len(rows) + 1))
    for source, targets in edges.items():
        for target in targets:
            ax.annotate(
                "", xy=place[target], xytext=place[source],
                arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.7, "shrinkA": 14, "shrinkB": 14},
            )  # fmt: skip
    for group, (x, y) in place.items():
        colour = "#fbd5a5" if group.startswith("noiseveil.app") else "#c6dbef"
        label = group.removeprefix("noiseveil.") or group
        ax.text(x, y, label, ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round", "fc": colour, "ec": "0.3"})  # fmt: skip
    ax.set_xlim(0, width)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.axis("off")
    ax.set_title(
        "noiseveil imports: each box imports only boxes below it (library blue, application orange);\n"
        "an arrow a longer path implies is left out"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "structure")
    args = parser.parse_args()
    imports = import_graph()
    modules = sorted(imports)
    module_cycles = cycles(imports)
    group_edges: dict[str, set[str]] = defaultdict(set)
    for source, targets in imports.items():
        for target in targets:
            if group_of(source) != group_of(target):
                group_edges[group_of(source)].add(group_of(target))
    groups = sorted({group_of(m) for m in modules} - {PACKAGE, "noiseveil.app"})
    group_edges.pop(PACKAGE, None)  # the package's lazy __init__ re-exports; it is nobody's layer
    group_edges = {s: ts & set(groups) for s, ts in group_edges.items() if s in groups}
    level = layers(groups, group_edges)
    group_cycles = cycles(group_edges)
    # Drawn without the imports a longer path implies, when there is no cycle to hide.
    drawn = group_edges if group_cycles else transitive_reduction(group_edges)
    draw(groups, drawn, level, args.out / "imports.png")
    result = {
        **provenance([], []),
        "modules": len(modules),
        "import_edges": sum(len(t) for t in imports.values()),
        "module_cycles": module_cycles,
        "group_cycles": group_cycles,
        "groups": {g: {"layer": level[g], "imports": sorted(group_edges.get(g, ()))} for g in groups},
        "picture": "imports.png",
    }
    write_result(args.out / "imports.json", result)
    print(f"{len(modules)} modules, {result['import_edges']} imports, {len(module_cycles)} import cycles")
    for cycle in module_cycles:
        print("  cycle: " + " <-> ".join(cycle))
    print(f"wrote {args.out / 'imports.json'} and imports.png")


if __name__ == "__main__":
    main()

"""The layout is the architecture: the library never imports the application, the models never
import the registry that depends on them, no module imports itself back through others, and
only the attacks reach the hazmat layer.

The import graph is grimp's (every ``import`` statement of the package, those inside functions
too), and the rules are checked on what a module reaches TRANSITIVELY: a model importing a
helper that imports the registry breaks the rule as much as importing it itself.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path

import pytest

import noiseveil

# The graph and its walks are the ones scripts/draw_structure.py draws and counts cycles with.
_spec = importlib.util.spec_from_file_location(
    "draw_structure", Path(__file__).resolve().parents[1] / "scripts" / "draw_structure.py"
)
structure = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(structure)
Graph, cycles, import_graph, reached = (
    structure.Graph,
    structure.cycles,
    structure.import_graph,
    structure.reached,
)

HAZMAT = "noiseveil.hazmat"


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def reaching(graph: Graph, sources: Iterable[str], forbidden: str) -> list[str]:
    """ "A reaches F" for each source module that imports ``forbidden`` (or a module inside it),
    directly or transitively."""
    return sorted(
        f"{source} reaches {target}"
        for source in sources
        for target in reached(graph, source)
        if within(target, forbidden)
    )


def modules_in(graph: Graph, *packages: str) -> list[str]:
    return sorted(m for m in graph if any(within(m, p) for p in packages))


def test_no_module_imports_itself_back() -> None:
    graph = import_graph()
    assert len(graph) > 80  # the graph is the package's, not an empty one
    assert cycles(graph) == []


def test_the_library_never_reaches_the_application() -> None:
    graph = import_graph()
    library = [m for m in graph if not within(m, "noiseveil.app")]
    assert len(library) > 40
    assert reaching(graph, library, "noiseveil.app") == []


def test_the_models_never_reach_the_registry() -> None:
    """The registry (noiseveil.zoo) depends on the models, never the reverse (perceptual.py
    imported it, and the TransNet scheme perceptual.py)."""
    graph = import_graph()
    models = modules_in(graph, "noiseveil.perceptual", "noiseveil.schemes", "noiseveil.attacks")
    assert len(models) > 15
    assert reaching(graph, models, "noiseveil.zoo") == []


def test_only_the_attacks_import_the_hazmat_layer() -> None:
    """Decryption that skips authentication is for the brute-force attack and the tests; a
    report recovering the key holder's images must use the verified path."""
    graph = import_graph()
    importers = sorted(m for m, imported in graph.items() if HAZMAT in imported)
    assert importers  # the check sees the attack's import
    assert [m for m in importers if not within(m, "noiseveil.attacks")] == []


def test_every_scheme_class_is_public() -> None:
    from noiseveil.zoo import SCHEMES

    assert {cls.__name__ for cls in SCHEMES.values()} <= set(noiseveil.__all__)
    for cls in SCHEMES.values():
        assert getattr(noiseveil, cls.__name__) is cls


# -- the checks can fail --------------------------------------------------------------------
def test_the_cycle_check_sees_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_the_transitive_check_sees_an_indirect_import() -> None:
    graph = {"lib.model": {"lib.helper"}, "lib.helper": {"lib.zoo.cards"}, "lib.zoo.cards": set()}
    assert reaching(graph, ["lib.model"], "lib.zoo") == ["lib.model reaches lib.zoo.cards"]


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("noiseveil.app.commands", "noiseveil.zoo"),  # the application imports the library
        ("noiseveil.attacks.bruteforce", HAZMAT),
        ("noiseveil.app.service.server", "noiseveil.app.services"),  # through store.py
    ],
)
def test_the_graph_holds_known_imports(source: str, target: str) -> None:
    assert target in reached(import_graph(), source)

"""The layout is the architecture: the library never imports the application, and the
schemes never import the registry that depends on them."""

from __future__ import annotations

import ast
from pathlib import Path

import noiseveil

PACKAGE = Path(noiseveil.__file__).parent


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def offenders(files: list[Path], forbidden: str) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in files
        for name in sorted(imported_modules(path))
        if name == forbidden or name.startswith(forbidden + ".")
    ]


def test_the_library_never_imports_the_application() -> None:
    library = [p for p in modules_under(PACKAGE) if "app" not in p.relative_to(PACKAGE).parts]
    assert len(library) > 20
    assert offenders(library, "noiseveil.app") == []


def test_schemes_and_attacks_never_import_the_registry() -> None:
    files = modules_under(PACKAGE / "schemes") + modules_under(PACKAGE / "attacks")
    assert offenders(files, "noiseveil.zoo") == []


def test_the_checker_sees_an_import() -> None:
    """The checks above can fail: the application does import the library and the registry."""
    assert offenders(modules_under(PACKAGE / "app"), "noiseveil.zoo")

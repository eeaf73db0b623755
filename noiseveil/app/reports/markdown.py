"""What every renderer of results/ shares: the JSON files a report reads, links to them from wherever
the Markdown ends up (the README, results/<name>/report.md, a docs page), and Markdown tables."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, wraps
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Results:
    """The JSON files one report reads, by their path under the results folder.

    ``link_root`` is the results folder as seen from the Markdown being written ("results/" for
    the README, "../../results/" for a page two folders down), so a renderer links a file
    without knowing where its text goes."""

    folder: Path
    link_root: str
    files: dict[str, dict[str, Any]]

    @classmethod
    def read(cls, folder: Path, patterns: tuple[str, ...], link_root: str = "results/") -> Results:
        found = {}
        for pattern in patterns:
            for path in sorted(folder.glob(pattern)):
                found[path.relative_to(folder).as_posix()] = json.loads(path.read_text())
        return cls(folder, link_root, found)

    def matching(self, pattern: str) -> list[tuple[str, dict[str, Any]]]:
        """The files whose path matches ``pattern`` (a glob under the results folder), sorted."""
        return [(name, data) for name, data in self.files.items() if Path(name).match(pattern)]

    def one(self, name: str) -> dict[str, Any] | None:
        return self.files.get(name)

    def first(self) -> dict[str, Any] | None:
        """The one file of a report that reads one (a paper report's JSON), or None if missing."""
        return next(iter(self.files.values()), None)

    def link(self, name: str) -> str:
        """``[file.json](.../results/dir/file.json)``: a file under the results folder, by its path."""
        return f"[{Path(name).name}]({self.link_root}{name})"

    def path(self, name: str) -> str:
        """The file's address from the Markdown being written (for images)."""
        return f"{self.link_root}{name}"

    def exists(self, name: str) -> bool:
        return (self.folder / name).exists()

    def text(self, name: str) -> str:
        """A text file the measurement wrote beside its JSON (e.g. a recorded session)."""
        return (self.folder / name).read_text().strip()


FileSection = Callable[[Results, str, dict[str, Any]], str]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def pct(value: float) -> str:
    """A share as a percentage with two decimals (0.9923 -> 99.23)."""
    return f"{100 * value:.2f}"


@cache
def _shipped() -> frozenset[str]:
    from noiseveil.zoo import MANIFEST

    return frozenset(json.loads(MANIFEST.read_text()))


def model_name(model_id: str) -> str:
    """A model id in code style, marked when the shipped zoo no longer has it (a measured model
    that was renamed or dropped: the row stays, the reader is told)."""
    return f"`{model_id}`" if model_id in _shipped() else f"`{model_id}` (not shipped)"


def verdict_table(settings: list[tuple[str, dict[str, Any]]]) -> str:
    """What each attack suite got, one row per setting (a model, a key, an α): which attacks
    beat the label-only baseline (the label the cloud learns by design) and which came closer
    to their own plaintext than to another of the same label (information about the image
    itself). A suite is a report's dict with its ``attacks``; the verdicts it stored are used as
    stored, else drawn by the same rules. Without the same-label control it says "not measured"."""
    from noiseveil.attacks import beating_baseline, image_specific

    rows = []
    for setting, suite in settings:
        attacks = suite["attacks"]
        beating = suite.get("beating_label_only", beating_baseline(attacks))
        controlled = any("control" in a for a in attacks.values())
        specific = suite.get("image_specific", image_specific(attacks)) if controlled else None
        run = [name for name in attacks if name != "label-only"]
        rows.append([setting, "; ".join(run), "; ".join(beating) or "none", _listed(specific)])
    header = ["setting", "attacks run", "beat the label-only baseline", "closer to their own image"]
    return table(header, rows)


def _listed(names: list[str] | None) -> str:
    return "not measured" if names is None else "; ".join(names) or "none"


def from_file(name: str) -> Callable[[FileSection], Callable[[Results], list[str]]]:
    """A section rendered from one JSON file under the results folder: no block while it is missing.

    The decorated function takes (results, name, data) and returns the section's Markdown."""

    def wrap(render: FileSection) -> Callable[[Results], list[str]]:
        @wraps(render)
        def section(results: Results) -> list[str]:
            data = results.one(name)
            return [] if data is None else [render(results, name, data)]

        return section

    return wrap

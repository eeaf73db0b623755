"""Every report of results/ in one registry: its name, the JSON it reads and the one renderer that
turns that JSON into Markdown.

``noiseveil report NAME`` runs the paper reports (the ones with ``run``) and writes their
report.md through ``render_markdown``; ``scripts/update_readme.py`` and the docs' results pages
(docs/hooks.py) render through the same functions, so each table is written in one place and
every number on a page is read from results/*.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from noiseveil.app.provenance import RESULTS_DIR, ReportError
from noiseveil.app.reports import (
    avp,
    avp_sweep,
    benchmarks,
    demo,
    etc,
    lossless,
    package,
    photos,
    ray,
    ric,
    security,
    service,
    training,
    transnet,
)
from noiseveil.app.reports.markdown import Results
from noiseveil.data import DataError
from noiseveil.zoo import ZooError

# `noiseveil report` options as given, by flag without the dashes ("itn-pairs"): left-out ones absent.
Options = dict[str, Any]
OPTION_FLAGS = ("images", "steps", "itn-pairs", "models", "ablation-steps", "sweep-steps", "stages")
OPTION_FLAGS += ("networks", "points", "budget")


@dataclass(frozen=True)
class Report:
    """One report: what it reads, how it renders, and for the paper reports how it runs.

    ``sections`` turns the JSON into Markdown blocks (a paper report's is its whole report.md,
    with its own title); ``parts`` are named extracts other pages show (the README's one table
    is ric's "headline", a scheme page shows its report's "leaks"); ``draw`` makes the figures
    that need the JSON alone (``--render-only``)."""

    name: str
    title: str
    reads: tuple[str, ...]  # globs under results/
    sections: Callable[[Results], list[str]]
    made_by: tuple[str, ...]  # the commands that write the JSON
    run: Callable[[Path, Options], str] | None = None
    options: frozenset[str] = frozenset()
    draw: Callable[[dict[str, Any], Path], None] | None = None
    parts: dict[str, Callable[[Results], str]] = field(default_factory=dict)

    def results(self, folder: Path = RESULTS_DIR, link_root: str = "results/") -> Results:
        return Results.read(folder, self.reads, link_root)

    def render_markdown(self, results: Results) -> str:
        text = "\n\n".join(self.sections(results))
        if not text:
            return f"# {self.title}\n\n" + self.part_missing() + "\n"
        return (text if text.startswith("# ") else f"# {self.title}\n\n{text}").rstrip("\n") + "\n"

    def part(self, name: str, results: Results) -> str:
        """A named extract, or a line saying what writes the JSON it needs."""
        text = self.parts[name](results)
        return text or self.part_missing()

    def part_missing(self) -> str:
        return "Nothing measured yet: " + ", ".join(f"`{c}`" for c in self.made_by) + " write it."

    def check_options(self, given: Options) -> None:
        """Refuse, before any work, an option this report does not take (it would be ignored)."""
        for flag in given:
            if flag not in self.options:
                takers = [r.name for r in REPORTS.values() if flag in r.options]
                many = "s" if len(takers) > 1 else ""
                raise ReportError(
                    f"--{flag} is for the {_and(takers)} report{many}; report {self.name} does not take it"
                )

    def render_saved(self, out: Path) -> Path:
        """report.md (and the figures drawn from the JSON alone) from ``out``'s saved JSON."""
        saved = out / f"{self.name}-report.json"
        if not saved.exists():
            raise DataError(f"{saved}: no report to render; run without --render-only first")
        if self.draw is not None:
            self.draw(json.loads(saved.read_text()), out)
        (out / "report.md").write_text(self.render_markdown(Results.read(out, (saved.name,))))
        return saved


def results_folder(paper: str, budget: str | None) -> str:
    """Where a paper report writes under results/ by default: a run at another budget than the
    default one (what results/<paper> was made with) writes beside it, never over it."""
    return paper if budget in (None, "default") else f"{paper}-{budget}"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _renamed(given: Options, names: dict[str, str]) -> dict[str, Any]:
    """The given options under the budget's field names."""
    return {field: given[flag] for flag, field in names.items() if flag in given}


def _preset(name: str, module: Any, given: Options) -> Any:
    """The report's budget preset named by --budget (``default`` when not given), said first."""
    preset = given.get("budget", "default")
    print(f"report {name}: budget {preset}, which sets {module.SCALES}", flush=True)
    return module.BUDGETS[preset]


def _state(result: dict[str, Any]) -> str:
    return "complete" if result["complete"] else "partial: run again to continue the sweep"


def _check_models(given: Options, known: list[str]) -> None:
    """A typo in --models stops the report before an hour of work."""
    unknown = [m for m in given.get("models") or [] if m not in known]
    if unknown:
        raise ZooError(f"not a shipped RIC model: {', '.join(unknown)}; shipped: {', '.join(known)}")


def _wrote(out: Path, name: str) -> str:
    return f"wrote {out / 'report.md'} and {out / f'{name}-report.json'}"


def _run_ric(out: Path, given: Options) -> str:
    _check_models(given, ric.shipped_ric_models())
    names = {"images": "images", "ablation-steps": "ablation_steps", "sweep-steps": "sweep_steps"}
    budget = replace(_preset("ric", ric, given), **_renamed(given, names))
    ric.run(out, budget, given.get("models"), only_stages=given.get("stages"))
    return _wrote(out, "ric")


def _run_etc(out: Path, given: Options) -> str:
    names = {"images": "images", "steps": "itn_steps", "itn-pairs": "itn_pairs"}
    etc.run(out, replace(_preset("etc", etc, given), **_renamed(given, names)))
    return _wrote(out, "etc")


def _run_avp(out: Path, given: Options) -> str:
    names = {"images": "images", "steps": "attack_steps", "itn-pairs": "attack_pairs"}
    avp.run(
        out, replace(_preset("avp", avp, given), **_renamed(given, names)), only_stages=given.get("stages")
    )
    return _wrote(out, "avp")


def _run_avp_sweep(out: Path, given: Options) -> str:
    budget, preset = _preset("avp-sweep", avp_sweep, given), given.get("budget", "default")
    result = avp_sweep.run(out, budget, preset=preset, max_points=given.get("points"))
    picks = ", ".join(f"{m}: {c or 'none meets the target'}" for m, c in result["chosen"].items())
    return f"{_wrote(out, 'avp-sweep')} ({_state(result)}; chosen: {picks})"


def _run_transnet(out: Path, given: Options) -> str:
    names = {"images": "test_images", "steps": "itn_steps", "itn-pairs": "itn_pairs"}
    budget = replace(_preset("transnet", transnet, given), **_renamed(given, names))
    result = transnet.run(out, budget, max_networks=given.get("networks"))
    return f"{_wrote(out, 'transnet')} ({_state(result)})"


def _run_security(out: Path, given: Options) -> str:
    _check_models(given, security.default_models())
    names = {"images": "test_images", "steps": "network_steps", "itn-pairs": "itn_pairs"}
    security.run(
        out, given.get("models"), replace(_preset("security", security, given), **_renamed(given, names))
    )
    return _wrote(out, "security")


def _paper_sections(markdown: Callable[[dict[str, Any]], str]) -> Callable[[Results], list[str]]:
    """A paper report renders its one JSON file whole (its report.md)."""
    return lambda results: [markdown(results.first())] if results.first() else []


def _paper(name: str, title: str, module: Any, run: Callable[[Path, Options], str], options: str, **kw: Any):
    return Report(
        name,
        title,
        (f"{name}/{name}-report.json",),
        _paper_sections(module.markdown),
        (f"noiseveil report {name}",),
        run,
        frozenset(options.split()),
        **kw,
    )


_ALL = [
    _paper(
        "ric",
        "RIC: the paper's tables",
        ric,
        _run_ric,
        "images ablation-steps sweep-steps models stages budget",
        draw=ric.draw,
        parts={"headline": ric.headline},
    ),
    _paper(
        "etc",
        "EtC: the paper's tables",
        etc,
        _run_etc,
        "images steps itn-pairs budget",
        parts={"leaks": etc.leaks},
    ),
    _paper(
        "avp",
        "AVP: the paper's tables",
        avp,
        _run_avp,
        "images steps itn-pairs stages budget",
        parts={"leaks": avp.leaks},
    ),
    _paper(
        "avp-sweep",
        "AVP: the sweep towards the paper's figures",
        avp_sweep,
        _run_avp_sweep,
        "budget points",
        draw=avp_sweep.draw,
        parts={"summary": avp_sweep.summary},
    ),
    _paper(
        "transnet",
        "TransNet: the evaluation",
        transnet,
        _run_transnet,
        "images steps itn-pairs networks budget",
        parts={"leaks": transnet.leaks, "window": transnet.window_part},
    ),
    Report(  # the same evaluation at --budget paper, written beside the default budget's
        "transnet-paper",
        "TransNet: the evaluation at the paper budget",
        ("transnet-paper/transnet-report.json",),
        _paper_sections(transnet.markdown),
        ("noiseveil report transnet --budget paper",),
        parts={"leaks": transnet.leaks, "window": transnet.window_part},
    ),
    _paper(
        "security",
        "RIC: the attack suite",
        security,
        _run_security,
        "images steps itn-pairs models budget",
        parts={"leaks": security.leaks},
    ),
    Report("demo", "The demo, as run", demo.READS, demo.sections, ("noiseveil demo",)),
    Report(
        "training",
        "Training the zoo",
        training.READS,
        training.sections,
        (
            "noiseveil train-classifier ID",
            "noiseveil train ID",
            "python scripts/benchmark_training_step.py",
            "python scripts/benchmark_ric_step.py",
        ),
    ),
    Report(
        "photos",
        "Lossless RIC on real photos",
        photos.READS,
        photos.sections,
        ("python scripts/measure_photos.py", "python scripts/benchmark_photos.py"),
    ),
    Report(
        "lossless",
        "Lossless RIC: command line, cost, codecs",
        lossless.READS,
        lossless.sections,
        (
            "python scripts/evaluate_cli.py",
            "python scripts/benchmark_lossless.py",
            "python scripts/benchmark_codecs.py",
        ),
    ),
    Report(
        "transnet-calibration",
        "TransNet: calibrating L_feat",
        (transnet.CALIBRATION,),
        transnet.calibration,
        ("python scripts/calibrate_transnet_feature_scale.py",),
    ),
    Report(
        "benchmarks",
        "Throughput and memory",
        benchmarks.READS,
        benchmarks.sections,
        (
            "python scripts/benchmark_throughput.py",
            "python scripts/benchmark_memory.py",
            "python scripts/benchmark_avp.py",
            "python scripts/load_test.py",
            "python scripts/benchmark_lossless.py",
            "python scripts/benchmark_photos.py",
        ),
        parts={"floor": benchmarks.floor},
    ),
    Report(
        "service",
        "The cloud service, as run",
        service.READS,
        service.sections,
        (
            "python scripts/service_session.py",
            "python scripts/load_test.py",
            "python scripts/screenshot_gallery.py",
        ),
    ),
    Report(
        "package",
        "The wheel and the import structure",
        package.READS,
        package.sections,
        ("python scripts/check_wheel.py", "python scripts/draw_structure.py"),
        parts={"wheel": package.wheel, "structure": package.structure},
    ),
    Report(
        "ray",
        "The file pipeline on Ray",
        ray.READS,
        ray.sections,
        ("python scripts/benchmark_ray.py", "python scripts/measure_ray_faults.py"),
    ),
]
REPORTS: dict[str, Report] = {r.name: r for r in _ALL}
PAPER_REPORTS = [r.name for r in _ALL if r.run is not None]  # `noiseveil report`'s choices

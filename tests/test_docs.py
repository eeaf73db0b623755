"""The docs site's generated pages and the README: the command line reference has every command,
every report of the registry renders from the committed results and has a page in the nav, and
the README is the short front page its generator keeps up to date.

The strict build itself (``python3 -m mkdocs build --strict``, about 30 s here) runs in .ci/run
before the tests, so a broken link or docstring reference fails CI without a second build here.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from noiseveil.app.cli import build_parser, subcommands
from noiseveil.app.reports.registry import PAPER_REPORTS, REPORTS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = load_hooks()


def nav_pages(nav: list) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_the_cli_reference_has_every_command_with_its_help() -> None:
    page = HOOKS.cli_reference()
    commands = subcommands(build_parser())
    assert {"encrypt", "model add", "cloud token new", "report"} <= set(commands)
    for words, parser in commands.items():
        assert f"\n## noiseveil {words}\n" in page, words
        assert f"usage: noiseveil {words}" in page, words
        for action in parser._actions:
            for option in action.option_strings:
                assert option in page, f"{words} {option}"


def test_every_report_renders_from_the_committed_results_and_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = nav_pages(config["nav"])
    for name, report in REPORTS.items():
        assert HOOKS.report_page(name) in pages, name
        text = report.render_markdown(report.results(link_root="../../results/"))
        assert text.startswith("# ") and "Nothing measured yet" not in text, name
        assert "|---" in text, f"{name}: no table"
    paper = next(a for a in subcommands(build_parser())["report"]._actions if a.dest == "paper")
    assert list(paper.choices) == PAPER_REPORTS  # `noiseveil report` runs exactly the paper reports


def test_placeholders_in_the_docs_name_known_reports_and_parts() -> None:
    found = 0
    for page in (ROOT / "docs").rglob("*.md"):
        for match in HOOKS.PLACEHOLDER.finditer(page.read_text()):
            found += 1
            report = REPORTS[match["report"]]
            assert match["part"] is None or match["part"] in report.parts, (page, match[0])
    assert found >= 8


def test_the_readme_is_a_short_front_page_kept_up_to_date() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    proc = subprocess.run(
        [sys.executable, "scripts/update_readme.py", "--check"], cwd=ROOT, capture_output=True
    )
    assert proc.returncode == 0, proc.stderr
    # the exact first commands: install and demo, then the test command
    assert "pip install torch==2.13.0 && pip install -e '.[dev]'" in text and "noiseveil demo" in text
    assert "python3 -m pytest -q -n 2 --dist loadfile" in text
    table = text.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    headline = REPORTS["ric"].parts["headline"](REPORTS["ric"].results())
    assert table.strip() == headline.strip() and "`ric-cifar10`" in table
    # every local link and picture exists
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), target


@pytest.mark.parametrize("stale", ["| cifar10 | `ric-cifar10` | 9 |"])
def test_update_readme_check_fails_on_a_stale_table(tmp_path, stale) -> None:
    """--check compares what it would write: a hand-edited row is caught."""
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = README.read_text()
    start = text.index("| cifar10 | `ric-cifar10` |")
    edited = text[:start] + stale + text[text.index("\n", start) :]
    assert module.regenerated(edited) == module.regenerated(text) == text
    assert module.regenerated(edited) != edited

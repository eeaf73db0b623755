"""mkdocs hooks: the pages made at build time, so that ``mkdocs build --strict`` alone always shows
this checkout's results/ and command line.

- every report of the registry (noiseveil/app/reports/registry.py) becomes the page
  results/<name>/report.md, rendered by the same function as ``noiseveil report`` and the README;
- results/**/*.png and *.json are added to the site under results/, so pages link and embed them;
- ``<!-- render REPORT PART -->`` in a page is replaced by that report's named extract
  (``<!-- render demo -->`` by its whole body), with links relative to the page;
- reference/cli.md is every ``noiseveil`` command's ``--help``, walked from the argparse parser.
"""

from __future__ import annotations

import os
import posixpath
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's noiseveil, whichever one is installed

from noiseveil.app.cli import build_parser, subcommands  # noqa: E402
from noiseveil.app.reports.registry import REPORTS  # noqa: E402

RESULTS = ROOT / "results"
PLACEHOLDER = re.compile(r"<!-- render (?P<report>[\w-]+)(?: (?P<part>[\w-]+))? -->")
INDEX = "<!-- render-index -->"  # the results index's table of every report
ASSETS = (".png", ".json")
CLI_PAGE = "reference/cli.md"
HELP_WIDTH = "100"  # argparse wraps at $COLUMNS: one width, so the page does not depend on the terminal


def report_page(name: str) -> str:
    return f"results/{name}/report.md"


def _results_from(page_uri: str) -> str:
    """The results folder as a link from a page (``../../results/`` from results/ric/report.md)."""
    return posixpath.relpath("results", posixpath.dirname(page_uri) or ".") + "/"


def cli_reference() -> str:
    """Every command's --help as the parser prints it, top level first, nested commands in order."""
    os.environ["COLUMNS"] = HELP_WIDTH
    parser = build_parser()
    lines = [
        "# Command line reference",
        "",
        "Generated from the argparse parser (`noiseveil.app.cli.build_parser`) at build time: each "
        "section is what `noiseveil COMMAND --help` prints.",
        "",
        "## noiseveil",
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
    ]
    for words, sub in subcommands(parser).items():
        lines += ["", f"## noiseveil {words}", "", "```text", sub.format_help().rstrip(), "```"]
    return "\n".join(lines) + "\n"


def on_files(files: Files, config) -> Files:
    for path in sorted(RESULTS.rglob("*")):
        if path.is_file() and path.suffix in ASSETS:
            uri = f"results/{path.relative_to(RESULTS).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    for name, report in REPORTS.items():
        uri = report_page(name)
        text = report.render_markdown(report.results(RESULTS, _results_from(uri)))
        files.append(File.generated(config, uri, content=text))
    files.append(File.generated(config, CLI_PAGE, content=cli_reference()))
    return files


def _expand(match: re.Match, page_uri: str) -> str:
    report = REPORTS[match["report"]]
    results = report.results(RESULTS, _results_from(page_uri))
    if match["part"] is None:
        return "\n\n".join(report.sections(results)) or report.part_missing()
    return report.part(match["part"], results)


def report_index(page_uri: str) -> str:
    """One row per report: its page, the JSON it reads, the commands that write that JSON."""
    rows = []
    for name, report in REPORTS.items():
        link = posixpath.relpath(report_page(name), posixpath.dirname(page_uri) or ".")
        reads = ", ".join(f"`results/{pattern}`" for pattern in report.reads)
        rows.append(
            f"| [{report.title}]({link}) | {reads} | " + ", ".join(f"`{c}`" for c in report.made_by) + " |"
        )
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    markdown = markdown.replace(INDEX, report_index(page.file.src_uri))
    return PLACEHOLDER.sub(lambda m: _expand(m, page.file.src_uri), markdown)

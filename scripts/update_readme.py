"""Regenerate the README's results table from results/*.json (no number is typed by hand).

    python scripts/update_readme.py           # rewrite the table in README.md
    python scripts/update_readme.py --check   # exit 1 if README.md is not what it would write

Replaces the text between <!-- results:start --> and <!-- results:end --> with the headline table
of the report registry (noiseveil/app/reports/registry.py): the same renderer the RIC report and
the docs' results pages use. Every other table is on the docs site (docs/hooks.py renders them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's noiseveil, whichever one is installed

from noiseveil.app.reports.registry import REPORTS  # noqa: E402

README = ROOT / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
HEADLINE = "ric"  # the report whose headline table the README shows


def section() -> str:
    report = REPORTS[HEADLINE]
    return report.part("headline", report.results(link_root="results/"))


def regenerated(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{section()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args()
    text = README.read_text()
    new = regenerated(text)
    if args.check:
        if new != text:
            print("README.md's results table is stale: run python scripts/update_readme.py", file=sys.stderr)
            return 1
        print("README.md's results table is up to date")
        return 0
    README.write_text(new)
    print("README results table regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())

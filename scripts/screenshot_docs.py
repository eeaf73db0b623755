"""Screenshots of the built documentation site, to look at: results/docs/*.png.

    python scripts/screenshot_docs.py

Builds the site strictly (``mkdocs build --strict``) into a temporary folder and photographs
pages with Debian's headless Chromium at 1280x1600: the front page, a scheme page and the
development page (the import structure).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from noiseveil.app.provenance import REPO_ROOT, RESULTS_DIR

PAGES = {
    "site-front-page.png": "index.html",
    "site-scheme-ric.png": "schemes/ric/index.html",
    "site-development.png": "development/index.html",
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "docs")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("screenshot_docs: no chromium (apt-get install chromium)", file=sys.stderr)
        return 1
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    with tempfile.TemporaryDirectory(prefix="noiseveil-site-") as site:
        build = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", site]
        subprocess.run(build, cwd=REPO_ROOT, env=env, check=True)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, page in PAGES.items():
            shot = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
            shot += [f"--screenshot={args.out / name}", "--window-size=1280,1600", f"file://{site}/{page}"]
            subprocess.run(shot, check=True, capture_output=True, timeout=120)
            print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

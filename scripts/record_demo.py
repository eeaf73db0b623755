"""Run ``noiseveil demo`` and keep its record for the docs and the README: results/demo/.

    python scripts/record_demo.py

The demo writes demo.json (its table, with the command, commit, date, data and models) and a
grid per model into its run folder; this keeps that JSON and the grids of one model per kind
(the rest of the run folder, images and the demo key, stays in the temporary folder).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from noiseveil.app.provenance import RESULTS_DIR, provenance, write_result

KEPT_GRIDS = (
    "ric-lfw",
    "ric-cifar10",
    "ric-lfw-masked",
    "etc-cifar10-convmixer",
    "avp-lfw",
    "transnet-cifar10",
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "demo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="noiseveil-demo-") as tmp:
        demo = [sys.executable, "-m", "noiseveil.app.cli", "demo", "--out", tmp]
        code = subprocess.run(demo).returncode
        runs = sorted(Path(tmp).glob("*/demo.json"))
        if code != 0 or not runs:
            print(f"record_demo: noiseveil demo exited {code}; nothing recorded", file=sys.stderr)
            return 1
        record = json.loads(runs[-1].read_text())
        args.out.mkdir(parents=True, exist_ok=True)
        kept = [f"grid-{m}.png" for m in KEPT_GRIDS if f"grid-{m}.png" in record["grids"]]
        for name in kept:
            shutil.copy(runs[-1].parent / name, args.out / name)
    record = {**record, "grids": kept, "recorded_by": provenance([], [])["command"]}
    write_result(args.out / "demo.json", record)
    print(f"wrote {args.out / 'demo.json'} and {len(kept)} grids")
    return 0


if __name__ == "__main__":
    sys.exit(main())

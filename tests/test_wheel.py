"""The wheel a user installs holds the whole package: the shipped zoo (every weights file its
manifest names, byte for byte), the service's page and migrations; and stays under 50 MB.
(`python scripts/check_wheel.py` installs it into a clean venv outside the checkout and runs the
demo and the RIC round-trip tests there.)"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from noiseveil.locations import source_checkout

ROOT = source_checkout()
pytestmark = pytest.mark.skipif(ROOT is None, reason="needs the source checkout")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    # A copy of what git tracks, so the build leaves nothing in the checkout.
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("noiseveil-*.whl")
    return found


def test_the_wheel_holds_every_shipped_weights_file_intact(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("noiseveil/weights/manifest.json"))
        for model_id, entry in manifest.items():
            data = archive.read(f"noiseveil/weights/{entry['file']}")
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], model_id
    assert "noiseveil/app/service/static/gallery.html" in names
    assert any(n.startswith("noiseveil/app/service/migrations/versions/") for n in names)
    assert not any(n.startswith(("tests/", "results/", "scripts/")) for n in names)


def test_the_wheel_stays_under_50_mb(wheel: Path) -> None:
    assert wheel.stat().st_size < 50 * 1024 * 1024

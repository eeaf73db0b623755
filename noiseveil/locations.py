"""Where noiseveil keeps things on disk, for an editable checkout and an installed wheel alike.

A source checkout (the package folder beside ``pyproject.toml``) is the developers' layout: its
data bundle sits at ``../shared/data`` beside the checkout, results go to ``results/`` and
``noiseveil train`` ships weights into the package's zoo. An installed wheel has none of that:
data and user models live in the per-user data folder, results in the working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def source_checkout() -> Path | None:
    """The checkout's root if noiseveil runs from one (an editable install), else None."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None


def user_data_home() -> Path:
    """``$XDG_DATA_HOME/noiseveil`` (default ``~/.local/share/noiseveil``): the per-user folder
    of the data bundle (``data/``) and of the models a user adds (``models/``)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "noiseveil"

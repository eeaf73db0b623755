"""The operator's page: a gallery of what the cloud holds (noise-like images and their labels).

One self-contained HTML page (no external asset: the cloud may have no internet). It asks for a
token once (kept in the tab's sessionStorage, sent as ``Authorization``, never in a URL), then
shows counts per label, a filter by model and label, and the stored ciphertexts with label,
model and upload time, newest first, loading more on demand.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

PAGE = Path(__file__).parent / "static" / "gallery.html"


@cache
def gallery_page() -> str:
    return PAGE.read_text(encoding="utf-8")

"""End to end on real test images with the shipped models, through the real CLI: every dataset
model but AVP's (the checks: tests/end_to_end_checks.py)."""

from __future__ import annotations

import pytest
from end_to_end_checks import *  # noqa: F403  (the checks, collected here)
from end_to_end_checks import AVP_MODELS, MODELS, encrypted_fixture

OTHER_MODELS = [m for m in MODELS if m not in AVP_MODELS]
pytestmark = pytest.mark.skipif(not OTHER_MODELS, reason="no shipped scheme models")
encrypted = encrypted_fixture(OTHER_MODELS)

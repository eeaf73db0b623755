"""End to end on real test images with the shipped models, through the real CLI: AVP's models
(the checks: tests/end_to_end_checks.py)."""

from __future__ import annotations

import pytest
from end_to_end_checks import *  # noqa: F403  (the checks, collected here)
from end_to_end_checks import AVP_MODELS, encrypted_fixture

pytestmark = pytest.mark.skipif(not AVP_MODELS, reason="no shipped AVP models")
encrypted = encrypted_fixture(AVP_MODELS)

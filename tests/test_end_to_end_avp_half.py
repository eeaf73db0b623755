"""End to end through the real CLI: the other half of AVP's models (see test_end_to_end_avp.py)."""

from __future__ import annotations

import pytest
from end_to_end_checks import *  # noqa: F403  (the checks, collected here)
from end_to_end_checks import AVP_MODELS, encrypted_fixture

MINE = AVP_MODELS[1::2]
pytestmark = pytest.mark.skipif(not MINE, reason="fewer than two shipped AVP models")
encrypted = encrypted_fixture(MINE)

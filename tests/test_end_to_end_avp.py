"""End to end on real test images with the shipped models, through the real CLI: half of AVP's
models (the checks: tests/end_to_end_checks.py; the other half: test_end_to_end_avp_half.py).

AVP's encryption is an optimisation of hundreds of steps per image: one file for all its models
was the suite's longest, which pytest-xdist (a file per worker) cannot share between workers.
"""

from __future__ import annotations

import pytest
from end_to_end_checks import *  # noqa: F403  (the checks, collected here)
from end_to_end_checks import AVP_MODELS, encrypted_fixture

MINE = AVP_MODELS[::2]
pytestmark = pytest.mark.skipif(not MINE, reason="no shipped AVP models")
encrypted = encrypted_fixture(MINE)

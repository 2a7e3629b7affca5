"""Shared test configuration: a deterministic, modest hypothesis profile for the whole suite.

``RELUKIT_HYPOTHESIS=thorough`` switches to a random, ten times longer search, for hunting
edge cases before a change lands (CI keeps the deterministic profile).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("relukit", derandomize=True, max_examples=50, **_COMMON)
settings.register_profile("thorough", derandomize=False, max_examples=500, **_COMMON)
settings.load_profile(
    "thorough" if os.environ.get("RELUKIT_HYPOTHESIS") == "thorough" else "relukit"
)

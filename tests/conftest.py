"""Shared test configuration: a deterministic, modest hypothesis profile for the whole suite."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "relukit",
    derandomize=True,
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("relukit")

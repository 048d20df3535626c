"""Shared pytest setup for huzhu's tests.

Hypothesis runs without per-example deadlines: the suite runs on small, shared CI machines
where one slow example says nothing about correctness. Shared fixtures go here.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "huzhu",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("huzhu")

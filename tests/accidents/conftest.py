"""Accidents fixtures: station areas (reused from the alerts tests)."""

from tests.alerts.conftest import areas  # noqa: F401  (fixture, reused)

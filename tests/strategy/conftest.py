"""The strategy tests use the real PostgreSQL of tests/services (recorded-day backtests)."""

from __future__ import annotations

import pytest

SERVICES = "tests.services.fixtures"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(SERVICES):
        config.pluginmanager.import_plugin(SERVICES)

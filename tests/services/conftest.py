"""Real servers for these tests: the fixtures of `tests/services/fixtures.py`.

They are loaded as a plugin, once, unless the top-level conftest already loaded them for
every test (`pytest_plugins = ["tests.services.fixtures"]`): importing them here as well
would give this folder a second set of session servers.
"""

from __future__ import annotations

import pytest

PLUGIN = "tests.services.fixtures"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.import_plugin(PLUGIN)

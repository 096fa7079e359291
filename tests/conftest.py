"""Fixtures every test folder may use, each loaded once for the whole session.

Real servers (PostgreSQL, Redis, Prometheus) and the Kubernetes control plane are session
fixtures: started on first use, shared by every folder that asks, stopped at the end.
Loading them here (and nowhere else) is what keeps them to one of each per run.
"""

pytest_plugins = ["tests.services.fixtures", "tests.controlplane.fixtures"]

"""Fixtures of the operator's tests: the real control plane (tests/controlplane), the CRDs
applied to it, and the operator running as a subprocess against it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane.cluster import ControlPlane

from .support import CRD_DIR, OperatorProcess, apply_crds

__all__ = ["crds", "operator"]

# The kind end-to-end tests need Docker and a kind cluster (`make e2e-kind` sets this).
collect_ignore = [] if os.environ.get("TICKPLANE_E2E_KIND") == "1" else ["e2e_kind"]


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> Path:
    """The generated CRDs, applied and Established."""
    apply_crds(control_plane)
    return CRD_DIR


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane, crds: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """`tickplane operator` running against the control plane for the whole session."""
    proc = OperatorProcess(control_plane, tmp_path_factory.mktemp("operator"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()

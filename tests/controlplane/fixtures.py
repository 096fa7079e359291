"""A real Kubernetes control plane for the session: etcd, kube-apiserver, controller manager.

The binaries are built from the Go module proxy by `scripts/controlplane/build.sh` (the test
command runs it first, so its progress shows; if it has not, the fixture builds them). A
control plane that cannot start is an error of every test using it, with its log tails in
the message: these fixtures never skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client, config

from tests.controlplane.cluster import ControlPlane


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager; `control_plane.kubeconfig` is admin.

    Shared by the session: a test works in a namespace of its own (`namespace`) and gives
    cluster-wide objects (CRDs...) names of its own.
    """
    with ControlPlane(tmp_path_factory.mktemp("controlplane")) as cp:
        yield cp


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    """A Kubernetes Python client for the control plane's admin."""
    # The client reads the kubeconfig as operators and kubectl do (the loader is untyped).
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(control_plane.kubeconfig)
    )
    with api:
        yield api


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted after it."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)

"""The operator runs with nothing more than its RBAC (manifests/rbac/operator.yaml), and
kopf's peering keeps one operator active: a second one with a higher priority takes over
and the first pauses."""

from __future__ import annotations

import re
from pathlib import Path

from kubernetes import client

from tests.controlplane.api import eventually
from tests.controlplane.cluster import ControlPlane

from .support import (
    REPO,
    OperatorProcess,
    condition,
    mark_pod_ready,
    token_kubeconfig,
)
from .test_operator import ENGINES, Cluster, engine_body


def test_least_privilege_operator_takes_over_by_peering(
    operator: OperatorProcess,
    control_plane: ControlPlane,
    api_client: client.ApiClient,
    namespace: str,
    tmp_path: Path,
) -> None:
    control_plane.kubectl("create", "namespace", "tickplane", check=False)
    control_plane.kubectl("apply", "-f", str(REPO / "manifests" / "rbac" / "operator.yaml"))
    token = control_plane.kubectl(
        "create", "token", "tickplane-operator", "-n", "tickplane", "--duration=1h"
    ).stdout.strip()
    kubeconfig = token_kubeconfig(control_plane, token, tmp_path / "sa.kubeconfig")
    # What the service account may not do (least privilege): read Secrets, touch RBAC.
    for verb, what in [
        ("get", "secrets"),
        ("create", "clusterroles"),
        ("delete", "tradingengines"),
    ]:
        can = control_plane.kubectl(
            "auth", "can-i", verb, what, "-n", namespace,
            "--as=system:serviceaccount:tickplane:tickplane-operator", check=False,
        )  # fmt: skip
        assert can.stdout.strip() == "no", f"the operator may {verb} {what}"

    successor = OperatorProcess(
        control_plane, tmp_path, kubeconfig=kubeconfig, extra_args=("--priority=100",)
    )
    successor.start()
    try:
        eventually(
            lambda: True if "Pausing operations in favour of" in operator.tail(400) else None,
            timeout=60,
            what="the first operator to pause for the higher-priority one",
        )
        c = Cluster(api_client, namespace)
        c.create(ENGINES, engine_body("sa"))
        eventually(lambda: c.pod("sa-0"), what="the pod, made by the service account's work")
        mark_pod_ready(c.core, namespace, "sa-0")
        running = c.wait_condition(ENGINES, "sa", "Ready", "True", "PodReady")
        assert condition(running, "Progressing") is not None
        # No RBAC denial (other 403s happen: writes into namespaces being deleted).
        denied = re.compile(r'system:serviceaccount:tickplane:tickplane-operator\\?" cannot')
        assert not denied.search(successor.tail(2000)), successor.tail(100)
        assert "tickplane_operator_reconciles_total" in successor.metrics()
        reconciled = [
            line
            for line in successor.metrics().splitlines()
            if line.startswith(
                'tickplane_operator_reconciles_total{kind="TradingEngine",result="ok"}'
            )
        ]
        assert reconciled and float(reconciled[0].split()[-1]) >= 1
    finally:
        successor.stop()
    # The successor left cleanly: the first operator resumes.
    eventually(
        lambda: True if "Resuming operations after the pause" in operator.tail(400) else None,
        timeout=60,
        what="the first operator to resume",
    )

"""The gateway's `kubernetes` strategy source against the real control plane: Strategy
resources listed with their status figures, pause and resume patching `spec.paused`;
and the chart's gateway Role, which is all the source needs (least privilege)."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.controlplane.api import as_dict
from tests.controlplane.cluster import ControlPlane
from tickplane.api.routes.strategies import source_for
from tickplane.api.settings import GatewaySettings
from tickplane.api.strategies import KubernetesStrategies, StrategyControlError, StrategyNotFound

from .support import EXAMPLES, GROUP, VERSION, token_kubeconfig
from .test_chart import helm, render

__all__ = ["helm"]  # the chart tests' session fixture, used here too


def _strategy(name: str, account: str, symbol: str) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(yaml.safe_load((EXAMPLES / "strategy.yaml").read_text()))
    # The session's operator (other tests here run one) leaves annotated resources alone;
    # without it, it would reconcile these (no engine: phase Pending) under the test.
    body["metadata"] = {"name": name, "annotations": {f"{GROUP}/paused": "true"}}
    body["spec"]["account"] = account
    body["spec"]["symbols"] = [symbol]
    return body


def _create(api_client: client.ApiClient, namespace: str) -> client.CustomObjectsApi:
    custom = client.CustomObjectsApi(api_client)
    for name, account, symbol in (("mm-goog", "mm-desk", "GOOG"), ("twap-aapl", "exec", "AAPL")):
        custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "strategies", _strategy(name, account, symbol)
        )
    # What the operator writes once the strategy runs (no operator in this test).
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "strategies", "mm-goog",
        {"status": {"phase": "Running", "pnl": 1250.5}},
    )  # fmt: skip
    return custom


def _paused(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    obj = as_dict(
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "strategies", name)
    )
    return bool(obj["spec"]["paused"])


def test_lists_strategies_and_pauses_by_patching_spec(
    crds: Path, api_client: client.ApiClient, namespace: str
) -> None:
    custom = _create(api_client, namespace)
    source = KubernetesStrategies(api_client, namespace)

    views = {v.name: v for v in asyncio.run(source.strategies())}
    assert set(views) == {"mm-goog", "twap-aapl"}
    mm = views["mm-goog"]
    assert (mm.account, mm.source, mm.strategy, mm.symbols) == (
        "mm-desk", "kubernetes", "market_maker", ["GOOG"],
    )  # fmt: skip
    assert mm.state == "running" and mm.pnl == 1250.5 and mm.paused is False
    assert mm.params == {"qty": 100, "max_inventory": 1000}
    assert views["twap-aapl"].account == "exec" and views["twap-aapl"].state == "pending"

    paused = asyncio.run(source.control("mm-goog", "pause"))
    assert paused.state == "paused" and paused.paused is True
    assert _paused(custom, namespace, "mm-goog") is True
    assert _paused(custom, namespace, "twap-aapl") is False  # only the one named
    assert {v.name: v.state for v in asyncio.run(source.strategies())}["mm-goog"] == "paused"

    resumed = asyncio.run(source.control("mm-goog", "resume"))
    assert resumed.state == "running" and _paused(custom, namespace, "mm-goog") is False

    with pytest.raises(StrategyNotFound):
        asyncio.run(source.control("no-such-strategy", "pause"))


def test_the_charts_gateway_role_is_all_the_source_needs(
    crds: Path, helm: Path, control_plane: ControlPlane, api_client: client.ApiClient,
    namespace: str, tmp_path: Path,
) -> None:  # fmt: skip
    custom = _create(api_client, namespace)
    gateway = "tp-tickplane-gateway"
    rbac = [
        d
        for d in yaml.safe_load_all(render(helm, namespace))
        if d and d["kind"] in ("ServiceAccount", "Role", "RoleBinding")
        and d["metadata"]["name"].startswith(gateway)
    ]  # fmt: skip
    assert {d["kind"] for d in rbac} == {"ServiceAccount", "Role", "RoleBinding"}
    control_plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    token = control_plane.kubectl(
        "create", "token", gateway, "-n", namespace, "--duration=1h"
    ).stdout.strip()
    settings = GatewaySettings(
        strategies_source="kubernetes",
        strategies_namespace=namespace,
        strategies_kubeconfig=token_kubeconfig(control_plane, token, tmp_path / "gw.kubeconfig"),
    )
    source = source_for(settings)  # what the gateway builds from its settings
    assert {v.name for v in asyncio.run(source.strategies())} == {"mm-goog", "twap-aapl"}
    assert asyncio.run(source.control("twap-aapl", "pause")).paused is True
    assert _paused(custom, namespace, "twap-aapl") is True

    as_gateway = f"--as=system:serviceaccount:{namespace}:{gateway}"
    for verb, what, where, *more in [
        ("delete", "strategies", namespace),
        ("create", "strategies", namespace),
        ("patch", "strategies", namespace, "--subresource=status"),
        ("get", "secrets", namespace),
        ("list", "strategies", "default"),
    ]:
        can = control_plane.kubectl(
            "auth", "can-i", verb, what, *more, "-n", where, as_gateway, check=False
        )
        assert can.stdout.strip() == "no", f"the gateway may {verb} {what} {more} in {where}"
    for verb in ("get", "list", "patch"):
        can = control_plane.kubectl(
            "auth", "can-i", verb, "strategies", "-n", namespace, as_gateway
        )
        assert can.stdout.strip() == "yes"

    # Another namespace's strategies are out of reach: an answer with a reason, no crash.
    elsewhere = source_for(settings.model_copy(update={"strategies_namespace": "default"}))
    with pytest.raises(StrategyControlError) as err:
        asyncio.run(elsewhere.strategies())
    assert err.value.status == 503 and err.value.reason == "kubernetes_unavailable"

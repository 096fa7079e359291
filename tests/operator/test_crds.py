"""The CRDs: generated from the models without drift, admitted by a real apiserver with
their defaults, printer columns and CEL rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controlplane.api import as_dict
from tests.controlplane.cluster import ControlPlane
from tickplane.operator import crds as crd_module
from tickplane.operator.render import engine_config
from tickplane.operator.resources import TradingEngineSpec

from .support import EXAMPLES, GROUP, VERSION, error_message


def example(name: str) -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(data, dict)
    return data


def test_crd_files_match_the_models(tmp_path: Path) -> None:
    """`tickplane crds --check` passes on the repository, and fails on a stale file."""
    for out, names in crd_module.targets():
        stale = crd_module.write_crds(out, check=True, names=names)
        assert stale == [], f"{out} is stale: run `tickplane crds`"
    written = crd_module.write_crds(tmp_path)
    assert len(written) == 4
    stale = tmp_path / "strategies.tickplane.io.yaml"
    stale.write_text(stale.read_text().replace("maxLength: 64", "maxLength: 65"))
    assert crd_module.write_crds(tmp_path, check=True) == [stale]
    assert crd_module.main(["--out", str(tmp_path), "--check"]) == 1


def test_examples_are_admitted_with_defaults(
    crds: Path, control_plane: ControlPlane, api_client: client.ApiClient, namespace: str
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES))
    api = client.CustomObjectsApi(api_client)
    engine = as_dict(
        api.get_namespaced_custom_object(GROUP, VERSION, namespace, "tradingengines", "nasdaq")
    )
    # Defaults written by the apiserver from the schema.
    assert engine["spec"]["venue"]["paper"] is True
    assert engine["spec"]["journal"]["fsync"] == "batch"
    assert engine["spec"]["symbols"][0]["lotSize"] == 1
    assert engine["spec"]["marketData"]["speed"] == 1.0
    assert engine["spec"]["paused"] is False
    assert engine["spec"]["risk"]["pairs"]["mm-desk/GOOG"]["maxPosition"] == 50000
    strategy = as_dict(
        api.get_namespaced_custom_object(GROUP, VERSION, namespace, "strategies", "mm-goog")
    )
    assert strategy["spec"]["paused"] is False
    assert strategy["spec"]["parameters"] == {"qty": 100, "max_inventory": 1000}


def test_a_minimal_engine_gets_every_default(
    crds: Path, api_client: client.ApiClient, namespace: str
) -> None:
    api = client.CustomObjectsApi(api_client)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TradingEngine",
        "metadata": {"name": "minimal"},
        "spec": {"symbols": [{"name": "MSFT"}]},
    }
    got = as_dict(
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "tradingengines", body)
    )
    spec = got["spec"]
    assert spec["venue"] == {
        "kind": "internal",
        "paper": True,
        "unreachable": "reject",
        "trailPollSeconds": 1.0,
        "rateLimitMinBackoff": 1.0,
        "rateLimitMaxBackoff": 60.0,
        "earlyUpdatesMax": 10_000,
    }
    assert spec["resources"] == {"cpus": 2, "memory": "2Gi"}
    assert spec["journal"] == {
        "size": "10Gi",
        "fsync": "batch",
        "eventLogBytes": 256 << 20,
        "mdLogBytes": 256 << 20,
    }
    assert spec["updatePolicy"] == "automatic" and spec["risk"]["default"] == {}
    assert spec["symbols"] == [{"name": "MSFT", "tickSize": "0.01", "lotSize": 1}]


def test_kubectl_get_shows_the_columns(
    crds: Path, control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "tradingengine.yaml"))
    # The status as the operator writes it (through the status subresource).
    status = {
        "symbols": "GOOG,AAPL",
        "phase": "Running",
        "ordersPerSecond": 1250.5,
        "conditions": [{"type": "Ready", "status": "True", "reason": "PodReady"}],
    }
    control_plane.kubectl(
        "patch", "-n", namespace, "tradingengine/nasdaq", "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": status}),
    )  # fmt: skip
    out = control_plane.kubectl("get", "tradingengines", "-n", namespace).stdout.splitlines()
    assert out[0].split() == [
        "NAME",
        "SYMBOLS",
        "VENUE",
        "CPUS",
        "PHASE",
        "READY",
        "ORDERS/S",
        "AGE",
    ]
    row = out[1].split()
    assert row[:7] == ["nasdaq", "GOOG,AAPL", "internal", "2", "Running", "True", "1250.5"]
    wide = control_plane.kubectl("get", "te", "-n", namespace, "-o", "wide").stdout
    assert "P99" in wide.splitlines()[0] and "REVISION" in wide.splitlines()[0]
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "strategy.yaml"))
    out = control_plane.kubectl("get", "strategies", "-n", namespace).stdout.splitlines()
    assert out[0].split()[:5] == ["NAME", "ENGINE", "TYPE", "ACCOUNT", "REPLICAS"]
    assert out[1].split()[:5] == ["mm-goog", "nasdaq", "market_maker", "mm-desk", "1"]
    control_plane.kubectl(
        "patch", "-n", namespace, "strategy/mm-goog", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phase": "Running", "pnl": -1234.5}}),
    )  # fmt: skip
    row = control_plane.kubectl("get", "strategies", "-n", namespace).stdout.splitlines()[1]
    assert row.split()[5] == "Running" and "-1234.5" in row.split()


def _engine(**changes: Any) -> dict[str, Any]:
    body = example("tradingengine.yaml")
    body["metadata"]["name"] = "bad"
    for path, value in changes.items():
        node = body["spec"]
        *parents, leaf = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return body


INVALID_ENGINES = {
    "zero CPUs": (_engine(**{"resources.cpus": 0}), "cpus must be a positive integer"),
    "negative CPUs": (_engine(**{"resources.cpus": -2}), "cpus must be a positive integer"),
    "fractional CPUs": (_engine(**{"resources.cpus": 1.5}), "must be of type integer"),
    "alpaca without a secret": (
        _engine(**{"venue.kind": "alpaca"}),
        "venue alpaca needs credentialsSecret",
    ),
    "duplicate symbols": (
        _engine(symbols=[{"name": "GOOG"}, {"name": "GOOG"}]),
        "symbols must be unique",
    ),
    "no symbols": (_engine(symbols=[]), "should have at least 1 items"),
    "empty symbol": (_engine(symbols=[{"name": ""}]), "spec.symbols[0].name"),
    "zero tick size": (
        _engine(symbols=[{"name": "GOOG", "tickSize": "0.00"}]),
        "tickSize must be a positive decimal",
    ),
    "reference price above the core's": (
        _engine(symbols=[{"name": "GOOG", "referencePrice": 10**12 + 1}]),
        "spec.symbols[0].referencePrice in body should be less than or equal to 1000000000000",
    ),
    "bad memory": (_engine(**{"resources.memory": "lots"}), "memory must be a positive quantity"),
    "pair key without a symbol": (
        _engine(**{"risk.pairs": {"mm-desk": {"maxOrderQty": 1}}}),
        "risk.pairs mm-desk: a key must be ACCOUNT/SYMBOL, such as alice/GOOG",
    ),
    "pair key with two slashes": (
        _engine(**{"risk.pairs": {"mm-desk/GOOG": {}, "a/GOOG/x": {}}}),
        "risk.pairs a/GOOG/x: a key must be ACCOUNT/SYMBOL, such as alice/GOOG",
    ),
    "account key with a space": (
        _engine(**{"risk.accounts": {"mm-desk": {}, "mm desk": {"maxOrderQty": 1}}}),
        "risk.accounts mm desk: a key must be an account name: 1-64 letters, digits or "
        ". _ : @ -, starting with a letter or digit",
    ),
    "account key with a slash": (
        _engine(**{"risk.accounts": {"mm-desk/GOOG": {}}}),
        "risk.accounts mm-desk/GOOG: a key must be an account name",
    ),
    "account key too long": (
        _engine(**{"risk.accounts": {"a" * 65: {}}}),
        f"risk.accounts {'a' * 65}: a key must be an account name",
    ),
    "pair key with too long an account": (
        _engine(**{"risk.pairs": {f"{'a' * 65}/GOOG": {}}}),
        f"risk.pairs {'a' * 65}/GOOG: a key must be ACCOUNT/SYMBOL",
    ),
    "pair for a symbol not traded": (
        _engine(**{"risk.pairs": {"mm-desk/GOOG": {}, "mm-desk/MSFT": {}}}),
        "spec.risk.pairs: Invalid value: risk.pairs mm-desk/MSFT: the symbol "
        "after the / must be one of spec.symbols",
    ),
    "rate limit backoff of zero": (
        _engine(**{"venue.rateLimitMinBackoff": 0}),
        "spec.venue.rateLimitMinBackoff in body should be greater than 0",
    ),
    "rate limit backoff over an hour": (
        _engine(**{"venue.rateLimitMaxBackoff": 7200}),
        "spec.venue.rateLimitMaxBackoff in body should be less than or equal to 3600",
    ),
    "rate limit backoff min above max": (
        _engine(**{"venue.rateLimitMinBackoff": 30, "venue.rateLimitMaxBackoff": 10}),
        "spec.venue.rateLimitMinBackoff: Invalid value: "
        "rateLimitMinBackoff must be at most rateLimitMaxBackoff",
    ),
    "rate limit backoff min above the default max": (
        _engine(**{"venue.rateLimitMinBackoff": 90}),
        "rateLimitMinBackoff must be at most rateLimitMaxBackoff",
    ),
    "no early updates kept": (
        _engine(**{"venue.earlyUpdatesMax": 0}),
        "spec.venue.earlyUpdatesMax in body should be greater than or equal to 1",
    ),
    "early updates past the engine's bound": (
        _engine(**{"venue.earlyUpdatesMax": 1_000_001}),
        "spec.venue.earlyUpdatesMax in body should be less than or equal to 1000000",
    ),
    "event log under 1 MiB": (
        _engine(**{"journal.eventLogBytes": (1 << 20) - 1}),
        "spec.journal.eventLogBytes in body should be greater than or equal to 1048576",
    ),
    "market-data log under 1 MiB": (
        _engine(**{"journal.mdLogBytes": 4096}),
        "spec.journal.mdLogBytes: Invalid value: 4096: journal.mdLogBytes must be 0 (no "
        "market-data log) or at least 1 MiB (1048576)",
    ),
    "negative market-data log": (
        _engine(**{"journal.mdLogBytes": -1}),
        "spec.journal.mdLogBytes in body should be greater than or equal to 0",
    ),
    "logs larger than the journal's volume": (
        _engine(**{"journal.size": "1Gi", "journal.eventLogBytes": 1 << 30}),
        "spec.journal.eventLogBytes: Invalid value: journal.eventLogBytes + "
        "journal.mdLogBytes must be less than journal.size",
    ),
    "negative market collar": (
        _engine(**{"risk.default.marketCollarBps": -1}),
        "spec.risk.default.marketCollarBps: Invalid value: -1: "
        "spec.risk.default.marketCollarBps in body should be greater than or equal to 0",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_ENGINES))
def test_invalid_engines_are_rejected_with_a_clear_message(
    case: str, crds: Path, api_client: client.ApiClient, namespace: str
) -> None:
    body, message = INVALID_ENGINES[case]
    api = client.CustomObjectsApi(api_client)
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "tradingengines", body)
    assert err.value.status == 422
    assert message in error_message(err.value)
    with pytest.raises(ApiException) as gone:
        api.get_namespaced_custom_object(GROUP, VERSION, namespace, "tradingengines", "bad")
    assert gone.value.status == 404


def test_risk_keys_take_every_account_name(
    crds: Path, api_client: client.ApiClient, namespace: str
) -> None:
    """The accounts the gateway's keys and the engine's configuration accept are accepted
    as risk.accounts and risk.pairs keys, and the engine's own model reads them."""
    api = client.CustomObjectsApi(api_client)
    names = ["alice", "mm-desk.2", "desk_3:eu@fund", "A" + "b" * 63]
    body = _engine(
        **{
            "risk.accounts": {name: {"maxOrderQty": 5} for name in names},
            "risk.pairs": {f"{name}/GOOG": {"maxPosition": 7} for name in names},
        }
    )
    body["metadata"]["name"] = "accounts"
    got = as_dict(
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "tradingengines", body)
    )
    assert sorted(got["spec"]["risk"]["accounts"]) == sorted(names)
    spec = TradingEngineSpec.model_validate(got["spec"])
    config = engine_config("accounts", spec).validate()
    assert sorted(config.risk.accounts) == sorted(names)
    assert config.risk.accounts["desk_3:eu@fund"].max_order_qty == 5


def test_log_bounds_reach_the_engine_config(
    crds: Path, api_client: client.ApiClient, namespace: str
) -> None:
    """The least logs the apiserver admits (1 MiB of events, no market-data log) are
    what the engine's configuration takes, rendered as given."""
    api = client.CustomObjectsApi(api_client)
    body = _engine(**{"journal.eventLogBytes": 1 << 20, "journal.mdLogBytes": 0})
    body["metadata"]["name"] = "least-logs"
    got = as_dict(
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "tradingengines", body)
    )
    config = engine_config("least-logs", TradingEngineSpec.model_validate(got["spec"]))
    assert (config.event_log_bytes, config.md_log_bytes) == (1 << 20, 0)


def test_immutable_fields_cannot_change(
    crds: Path, api_client: client.ApiClient, namespace: str
) -> None:
    api = client.CustomObjectsApi(api_client)
    body = example("tradingengine.yaml")
    body["spec"]["journal"]["storageClassName"] = "fast"
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, "tradingengines", body)
    for patch, message in [
        (
            {"spec": {"venue": {"kind": "alpaca", "credentialsSecret": {"name": "s"}}}},
            "kind is immutable",
        ),
        (
            {"spec": {"journal": {"storageClassName": "slow"}}},
            "journal.storageClassName is immutable",
        ),
        ({"spec": {"journal": {"size": "20Gi"}}}, "journal.size is immutable"),
    ]:
        with pytest.raises(ApiException) as err:
            api.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "tradingengines", "nasdaq", copy.deepcopy(patch)
            )
        assert err.value.status == 422
        assert message in error_message(err.value)
    # A mutable field changes.
    api.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "tradingengines", "nasdaq", {"spec": {"resources": {"cpus": 4}}}
    )
    strategy = example("strategy.yaml")
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, "strategies", strategy)
    with pytest.raises(ApiException) as err:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "strategies", "mm-goog", {"spec": {"account": "other"}}
        )
    assert "account is immutable" in error_message(err.value)


def test_strategy_rules_and_scale_subresource(
    crds: Path, control_plane: ControlPlane, api_client: client.ApiClient, namespace: str
) -> None:
    api = client.CustomObjectsApi(api_client)
    bad = example("strategy.yaml")
    bad["spec"]["symbols"] = ["GOOG", "GOOG"]
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, "strategies", bad)
    assert "symbols must be unique" in error_message(err.value)
    api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "strategies", example("strategy.yaml")
    )
    control_plane.kubectl("scale", "-n", namespace, "strategy/mm-goog", "--replicas=3")
    got = as_dict(
        api.get_namespaced_custom_object(GROUP, VERSION, namespace, "strategies", "mm-goog")
    )
    assert got["spec"]["replicas"] == 3

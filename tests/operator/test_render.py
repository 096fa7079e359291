"""What a resource becomes, without a cluster: revisions, the Alpaca Secret, risk limits,
paused strategies."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from tickplane.core.config import ConfigError, EngineConfig, RiskLimits
from tickplane.operator.render import engine_config, engine_objects, strategy_objects
from tickplane.operator.resources import StrategySpec, TradingEngineSpec

BASE: dict[str, Any] = {"symbols": [{"name": "GOOG"}]}


def render(**spec: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    revision, objects = engine_objects(
        "e", "ns", "uid-1", TradingEngineSpec.model_validate({**BASE, **spec}), default_image="i:1"
    )
    return revision, {o["kind"]: o for o in objects}


def test_revision_follows_what_the_pod_runs_only() -> None:
    base, _ = render()
    assert render()[0] == base  # stable
    assert render(journal={"fsync": "always"})[0] != base  # the engine's configuration
    assert render(resources={"cpus": 3})[0] != base  # the pod
    assert render(image="i:2")[0] != base
    # What does not restart the engine: how the operator rolls it.
    assert render(updatePolicy="supervised")[0] == base
    assert render(paused=True)[0] == base


def test_alpaca_credentials_come_from_the_secret() -> None:
    _, objects = render(
        venue={"kind": "alpaca", "credentialsSecret": {"name": "alpaca", "keyIdKey": "id"}}
    )
    pod = objects["StatefulSet"]["spec"]["template"]["spec"]
    secret = next(v for v in pod["volumes"] if v["name"] == "alpaca")["secret"]
    assert secret["secretName"] == "alpaca"
    assert {"key": "id", "path": "key_id"} in secret["items"]
    assert '"secret_dir": "/etc/tickplane/alpaca"' in objects["ConfigMap"]["data"]["engine.json"]
    env = pod["containers"][0].get("env", [])
    assert not [e for e in env if "SECRET" in e["name"]]  # never in the environment or file


def test_the_trail_poll_reaches_the_engine_config() -> None:
    venue = {"kind": "alpaca", "credentialsSecret": {"name": "alpaca"}}
    for given, rendered in ((None, 1.0), (0.25, 0.25), (0, 0.0)):
        spec = venue if given is None else {**venue, "trailPollSeconds": given}
        _, objects = render(venue=spec)
        config = json.loads(objects["ConfigMap"]["data"]["engine.json"])
        assert config["venue"]["trail_poll_seconds"] == rendered


def test_the_rate_limit_backoff_reaches_the_engine_config() -> None:
    venue = {"kind": "alpaca", "credentialsSecret": {"name": "alpaca"}}
    for given, rendered in (
        ({}, (1.0, 60.0)),
        ({"rateLimitMinBackoff": 0.5}, (0.5, 60.0)),
        ({"rateLimitMinBackoff": 2, "rateLimitMaxBackoff": 10}, (2.0, 10.0)),
    ):
        _, objects = render(venue={**venue, **given})
        config = json.loads(objects["ConfigMap"]["data"]["engine.json"])["venue"]
        assert (config["rate_limit_min_backoff"], config["rate_limit_max_backoff"]) == rendered


def test_the_early_update_bound_reaches_the_engine_config() -> None:
    venue = {"kind": "alpaca", "credentialsSecret": {"name": "alpaca"}}
    # the CRD's bounds are the engine's: both ends pass its validation (engine_config)
    for given, rendered in (
        ({}, 10_000),
        ({"earlyUpdatesMax": 1}, 1),
        ({"earlyUpdatesMax": 10**6}, 10**6),
    ):
        _, objects = render(venue={**venue, **given})
        config = json.loads(objects["ConfigMap"]["data"]["engine.json"])["venue"]
        assert config["early_updates_max"] == rendered


def test_the_log_sizes_reach_the_engine_config() -> None:
    for given, rendered in (
        ({}, (256 << 20, 256 << 20)),
        ({"eventLogBytes": 1 << 20, "mdLogBytes": 0}, (1 << 20, 0)),
        ({"eventLogBytes": 3 << 30, "mdLogBytes": 5 << 20}, (3 << 30, 5 << 20)),
    ):
        revision, objects = render(journal=given)
        config = json.loads(objects["ConfigMap"]["data"]["engine.json"])
        assert (config["event_log_bytes"], config["md_log_bytes"]) == rendered
        assert (revision == render()[0]) == (given == {})  # a new size rolls the engine


def test_pair_limits_reach_the_engine_config() -> None:
    risk = {
        "default": {"maxOrderQty": 100},
        "accounts": {"alice": {"maxOrderQty": 50}},
        "pairs": {"alice/GOOG": {"maxOrderQty": 5, "maxOpenOrders": 2}, "bob/GOOG": {}},
    }
    _, objects = render(risk=risk)
    config = msgspec.json.decode(objects["ConfigMap"]["data"]["engine.json"], type=EngineConfig)
    assert config.validate().risk.pairs == {
        "alice/GOOG": RiskLimits(max_order_qty=5, max_open_orders=2),
        "bob/GOOG": RiskLimits(),
    }
    assert config.risk.accounts == {"alice": RiskLimits(max_order_qty=50)}


def test_a_pair_the_engine_refuses_is_a_config_error() -> None:
    """What the operator reports as Degraded=InvalidSpec, should one pass the CRD (the
    CRD's rules refuse both; the models alone do not)."""
    for pair, message in (("alice/MSFT", "MSFT is not one of the symbols"), ("/GOOG", "ACCOUNT")):
        spec = TradingEngineSpec.model_validate({**BASE, "risk": {"pairs": {pair: {}}}})
        with pytest.raises(ConfigError, match=message):
            engine_config("e", spec)


def test_paused_strategy_has_no_replicas() -> None:
    spec = StrategySpec.model_validate(
        {"engineRef": {"name": "e"}, "type": "mm", "symbols": ["GOOG"], "account": "a"}
    )
    for paused, replicas in ((False, 1), (True, 0)):
        (deployment,) = strategy_objects("s", "ns", "uid", spec, default_image="i:1", paused=paused)
        assert deployment["spec"]["replicas"] == replicas

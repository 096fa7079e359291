"""Engine configuration: defaults, file, environment, and clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest

from tickplane.core.config import ConfigError, EngineConfig, VenueConfig, load_engine_config


def test_defaults_run_a_laptop_engine() -> None:
    cfg = load_engine_config(env={})
    assert cfg.order_entry.startswith("tcp://127.0.0.1") and cfg.fsync == "batch"
    assert [s.name for s in cfg.symbols] == ["GOOG", "AAPL"]


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(
        '{"name": "a", "symbols": [{"name": "X", "tick_size": "0.05"}],'
        ' "risk": {"default": {"max_order_qty": 5}}}'
    )
    cfg = load_engine_config(
        path, env={"TICKPLANE_ENGINE_NAME": "b", "TICKPLANE_ENGINE_MAX_BATCH": "7"}
    )
    assert (cfg.name, cfg.max_batch, cfg.symbols[0].tick_size) == ("b", 7, "0.05")
    assert cfg.risk.default.max_order_qty == 5
    toml = tmp_path / "e.toml"
    toml.write_text('name = "t"\nfsync = "none"\n')
    assert load_engine_config(toml, env={}).fsync == "none"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('{"nope": 1}', {}, "nope"),
        ('{"fsync": "sometimes"}', {}, "fsync"),
        ('{"symbols": []}', {}, "at least one symbol"),
        ('{"symbols": [{"name": "A"}, {"name": "A"}]}', {}, "unique"),
        ('{"risk": {"default": {"max_order_qty": -1}}}', {}, "max_order_qty"),
        ('{"risk": {"pairs": {"nopair": {}}}}', {}, "ACCOUNT/SYMBOL"),
        ('{"risk": {"pairs": {"/GOOG": {}}}}', {}, "ACCOUNT/SYMBOL"),
        ('{"risk": {"pairs": {"a/": {}}}}', {}, "ACCOUNT/SYMBOL"),
        ('{"risk": {"pairs": {"a/GOOG/x": {}}}}', {}, "ACCOUNT/SYMBOL"),
        ('{"risk": {"pairs": {"a/MSFT": {}}}}', {}, r"MSFT is not one of the symbols \['GOOG'"),
        ('{"event_log_bytes": 0}', {}, "event_log_bytes: at least 1 MiB"),
        ("{}", {"TICKPLANE_ENGINE_EVENT_LOG_BYTES": "1000"}, "event_log_bytes: at least 1 MiB"),
        ('{"venue": {"rate_limit_min_backoff": 0}}', {}, r"0 < min <= max.*not 0\.0 and"),
        ('{"venue": {"rate_limit_min_backoff": -1}}', {}, r"0 < min <= max.*not -1\.0 and"),
        ('{"venue": {"rate_limit_min_backoff": 90}}', {}, r"min <= max.*not 90\.0 and 60\.0"),
        ('{"venue": {"rate_limit_max_backoff": 7200}}', {}, r"max <= 3600"),
        ("{}", {"TICKPLANE_ENGINE_VENUE": '{"rate_limit_max_backoff": 0.5}'}, "min <= max"),
        ('{"venue": {"early_updates_max": 0}}', {}, "early_updates_max: 1 to 1000000 .* not 0"),
        ('{"venue": {"early_updates_max": -5}}', {}, "venue.early_updates_max: 1 to"),
        ('{"venue": {"early_updates_max": 1000001}}', {}, "early_updates_max: .* not 1000001"),
        ('{"venue": {"early_updates_max": 1.5}}', {}, r"early_updates_max"),
        ("{}", {"TICKPLANE_ENGINE_VENUE": '{"early_updates_max": 0}'}, "early_updates_max: 1 to"),
        ('{"risk": {"pairs": {"a b/GOOG": {}}}}', {}, "'a b/GOOG' is not ACCOUNT/SYMBOL"),
        ('{"risk": {"accounts": {"a b": {}}}}', {}, "risk.accounts: 'a b' is not an account name"),
        ('{"risk": {"accounts": {"": {}}}}', {}, "risk.accounts: '' is not an account name"),
        ('{"risk": {"accounts": {"a/GOOG": {}}}}', {}, "'a/GOOG' is not an account name"),
        ('{"risk": {"accounts": {"%s": {}}}}' % ("a" * 65), {}, "is not an account name: 1-64"),
        (
            '{"market": {"source": "synthetic", "taker_account": "the taker"}}',
            {},
            "market.taker_account: 'the taker' is not an account name: 1-64",
        ),
        # every setting refused with what to fix, none with a traceback (issue 3's review)
        ('{"symbols": [{"name": "X", "tick_size": "abc"}]}', {}, r"X: tick_size .* not 'abc'"),
        ('{"symbols": [{"name": "X", "tick_size": "NaN"}]}', {}, "tick_size must be a decimal"),
        ('{"symbols": [{"name": "X", "tick_size": "-0.01"}]}', {}, "tick_size must be"),
        ('{"symbols": [{"name": "X", "lot_size": 0}]}', {}, "X: lot_size must be"),
        ('{"symbols": [{"name": "X", "reference_price": -5}]}', {}, "reference_price .* not -5"),
        ('{"symbols": [{"name": "X", "reference_price": 0}]}', {}, "reference_price"),
        ('{"symbols": [{"name": "X", "reference_price": 10000000000000}]}', {}, "1 to 10000"),
        ('{"symbols": [{"name": ""}]}', {}, "symbol '': a name is 1-16"),
        ('{"symbols": [{"name": "A B"}]}', {}, "symbol 'A B': a name is"),
        ('{"symbols": [{"name": "GOOG/X"}]}', {}, "a name is"),
        ('{"top_levels": -5}', {}, "top_levels: 1 to 1000 .* not -5"),
        ('{"top_levels": 0}', {}, "top_levels"),
        ('{"top_levels": 1001}', {}, "top_levels"),
        ('{"http_port": 99999}', {}, "http_port: a TCP port 1-65535, or 0 .* not 99999"),
        ('{"http_port": -1}', {}, "http_port"),
        ("{}", {"TICKPLANE_ENGINE_HTTP_PORT": "abc"}, "http_port"),
        ('{"name": ""}', {}, "name: 1-64"),
        ('{"name": "a b"}', {}, "name: 1-64"),
        ('{"order_entry": ""}', {}, "order_entry: must not be empty"),
        ('{"journal_dir": ""}', {}, "journal_dir: must not be empty"),
        ('{"starting_cash": -1}', {}, "starting_cash"),
        ('{"market": {"source": "synthetic", "max_qty": 0}}', {}, "max_qty >= 1"),
        ('{"market": {"source": "synthetic", "take_ratio": 5}}', {}, "take_ratio <= 1"),
        ('{"market": {"source": "synthetic", "start_price": 0}}', {}, "start_price >= 1"),
        ("[1]", {}, "object"),
        ("{", {}, "e.json"),
        ("{}", {"TICKPLANE_ENGINE_COLOUR": "red"}, "colour"),
    ],
)
def test_bad_configuration_says_what_to_fix(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "e.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_engine_config(path, env=env)


def test_the_rate_limit_backoff_is_read(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{"venue": {"rate_limit_min_backoff": 0.5, "rate_limit_max_backoff": 8}}')
    venue = load_engine_config(path, env={}).venue
    assert (venue.rate_limit_min_backoff, venue.rate_limit_max_backoff) == (0.5, 8.0)
    defaults = load_engine_config(env={}).venue
    assert (defaults.rate_limit_min_backoff, defaults.rate_limit_max_backoff) == (1.0, 60.0)


def test_the_early_update_bound_is_read(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{"venue": {"kind": "alpaca", "early_updates_max": 250}}')
    assert load_engine_config(path, env={}).venue.early_updates_max == 250
    assert load_engine_config(env={}).venue.early_updates_max == 10_000
    bound = {"TICKPLANE_ENGINE_VENUE": '{"early_updates_max": 1000000}'}
    assert load_engine_config(env=bound).venue.early_updates_max == 1_000_000


def test_risk_keys_take_every_account_name(tmp_path: Path) -> None:
    names = ["alice", "mm-desk.2", "desk_3:eu@fund", "A" + "b" * 63]
    path = tmp_path / "e.json"
    path.write_text(
        json.dumps(
            {
                "symbols": [{"name": "GOOG"}],
                "risk": {
                    "accounts": {n: {"max_order_qty": 5} for n in names},
                    "pairs": {f"{n}/GOOG": {"max_position": 7} for n in names},
                },
            }
        )
    )
    cfg = load_engine_config(path, env={})
    assert sorted(cfg.risk.accounts) == sorted(names)
    assert cfg.risk.pairs["desk_3:eu@fund/GOOG"].max_position == 7


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json"):
        load_engine_config(tmp_path / "missing.json", env={})


def test_a_string_setting_takes_its_variable_as_written() -> None:
    """Numbers, true and null are JSON, but not for a string setting."""
    for text in ("123", "true", "null", '"quoted"', "[1]"):
        env = {"TICKPLANE_ENGINE_NAME": text, "TICKPLANE_ENGINE_JOURNAL_DIR": text}
        cfg = load_engine_config(env=env)
        assert (cfg.name, cfg.journal_dir) == (text, text)
    # a Literal of strings is a string setting too; its words are still checked
    assert load_engine_config(env={"TICKPLANE_ENGINE_FSYNC": "none"}).fsync == "none"
    with pytest.raises(ConfigError, match="fsync"):
        load_engine_config(env={"TICKPLANE_ENGINE_FSYNC": "1"})


def test_other_settings_still_parse_as_json() -> None:
    cfg = load_engine_config(
        env={
            "TICKPLANE_ENGINE_MAX_BATCH": "7",
            "TICKPLANE_ENGINE_PIN_CPU": "false",
            "TICKPLANE_ENGINE_SYMBOLS": '[{"name": "MSFT", "lot_size": 10}]',
            "TICKPLANE_ENGINE_RISK": '{"default": {"max_order_qty": 5}}',
        }
    )
    assert (cfg.max_batch, cfg.pin_cpu) == (7, False)
    assert [(s.name, s.lot_size) for s in cfg.symbols] == [("MSFT", 10)]
    assert cfg.risk.default.max_order_qty == 5
    with pytest.raises(ConfigError, match="max_batch"):
        load_engine_config(env={"TICKPLANE_ENGINE_MAX_BATCH": "many"})
    for bad in ("0", "65537"):
        with pytest.raises(ConfigError, match="max_batch: 1 to 65536"):
            load_engine_config(env={"TICKPLANE_ENGINE_MAX_BATCH": bad})
    assert load_engine_config(env={"TICKPLANE_ENGINE_MAX_BATCH": "65536"}).max_batch == 65_536


def test_every_setting_is_documented() -> None:
    """docs/engine-service.md, "Configuration": its table names every engine setting."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "engine-service.md"
    section = docs.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    documented = {
        re.split(r"[.\[]", name)[0] for row in rows for name in re.findall(r"`([^`]+)`", row)
    }
    settings = {f.name for f in msgspec.structs.fields(EngineConfig)}
    assert settings - documented == set(), "settings missing from the docs' table"
    assert documented - settings == set(), "the docs' table names settings that do not exist"
    # the venue's settings each have a row of their own (`venue.X`)
    venue = {name.split(".", 1)[1] for row in rows for name in re.findall(r"`(venue\.[^`]+)`", row)}
    venue_settings = {f.name for f in msgspec.structs.fields(VenueConfig)}
    assert venue_settings - venue == set(), "venue settings missing from the docs' table"
    assert venue - venue_settings == set(), "the docs' table names venue settings that do not exist"

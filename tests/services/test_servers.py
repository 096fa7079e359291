"""The real servers the tests run: each one starts, answers its own client, and stops.

PostgreSQL through asyncpg, Redis through redis-py, Prometheus scraping a
prometheus_client endpoint and answering PromQL over its HTTP API, and promtool.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import prometheus_client
import pytest
import redis as redis_py

from tests import ports

from . import servers
from .fixtures import PrometheusFactory
from .servers import (
    PostgresServer,
    RedisServer,
    ServerError,
    free_port,
    promtool,
)


def test_postgres_create_insert_query(postgres: PostgresServer) -> None:
    table = f"fills_{uuid.uuid4().hex[:8]}"

    async def roundtrip() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(postgres.dsn)
        try:
            await conn.execute(
                f"CREATE TABLE {table} (seq bigint PRIMARY KEY, symbol text NOT NULL,"
                " price numeric(18, 6) NOT NULL, qty bigint NOT NULL)"
            )
            await conn.executemany(
                f"INSERT INTO {table} VALUES ($1, $2, $3::numeric, $4)",
                [(1, "GOOG", "101.25", 10), (2, "GOOG", "101.50", 5), (3, "AAPL", "190", 7)],
            )
            return await conn.fetch(
                f"SELECT symbol, sum(qty) AS qty, max(price) AS high FROM {table}"
                " GROUP BY symbol ORDER BY symbol"
            )
        finally:
            await conn.close()

    rows = asyncio.run(roundtrip())
    assert [(r["symbol"], r["qty"], str(r["high"])) for r in rows] == [
        ("AAPL", 7, "190.000000"),
        ("GOOG", 15, "101.500000"),
    ]
    assert postgres.dsn.endswith(f"127.0.0.1:{postgres.port}/tickplane")
    assert postgres.port != 5432


def test_postgres_restart_keeps_port_and_data_with_password(tmp_path: Path) -> None:
    """A test can take PostgreSQL away and bring it back; password auth is enforced."""

    async def query(dsn: str, sql: str) -> object:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    with PostgresServer(tmp_path / "pg", password="s3cret/:@") as pg:
        port = pg.port
        asyncio.run(query(pg.dsn, "CREATE TABLE kept AS SELECT 42 AS answer"))
        pg.stop()
        assert not pg.running
        with pytest.raises(OSError):
            asyncio.run(query(pg.dsn, "SELECT 1"))
        pg.start()
        assert pg.port == port
        assert asyncio.run(query(pg.dsn, "SELECT answer FROM kept")) == 42
        wrong = pg.dsn.replace("s3cret", "wrong")
        with pytest.raises(asyncpg.InvalidPasswordError):
            asyncio.run(query(wrong, "SELECT 1"))


def test_redis_set_get(redis: RedisServer) -> None:
    client = redis_py.Redis.from_url(redis.url)
    try:
        key = f"test:{uuid.uuid4().hex}"
        assert client.set(key, "101.25", ex=60)
        assert client.get(key) == b"101.25"
        assert client.hset(f"{key}:pos", mapping={"GOOG": 10, "AAPL": -3}) == 2
        assert client.hgetall(f"{key}:pos") == {b"GOOG": b"10", b"AAPL": b"-3"}
        assert redis.port != 6379
    finally:
        client.close()


RULES = """\
groups:
  - name: tickplane-test
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: TestTargetDown
        expr: up == 0
        for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} is down"
          runbook: "Restart it."
"""


def test_promtool_check_rules(tmp_path: Path) -> None:
    good = tmp_path / "good.rules.yml"
    good.write_text(RULES)
    checked = promtool("check", "rules", str(good))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 2 rules found" in checked.stdout

    bad = tmp_path / "bad.rules.yml"
    bad.write_text(RULES.replace("up == 0", "up == == 0"))
    checked = promtool("check", "rules", str(bad))
    assert checked.returncode != 0
    assert "parse error" in checked.stdout + checked.stderr


def test_prometheus_scrapes_a_client_endpoint_and_evaluates_rules(
    tmp_path: Path, prometheus_factory: PrometheusFactory
) -> None:
    registry = prometheus_client.CollectorRegistry()
    orders = prometheus_client.Counter(
        "tickplane_test_orders", "Orders seen by the test.", ["outcome"], registry=registry
    )
    orders.labels("filled").inc(3)
    orders.labels("rejected").inc()
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, "127.0.0.1", registry=registry)
    rules = tmp_path / "test.rules.yml"
    rules.write_text(RULES)
    try:
        prom = prometheus_factory(
            [{"job_name": "app", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
            rule_files=[rules],
        )
        target = prom.wait_for_target("app")
        assert target["labels"]["instance"] == f"127.0.0.1:{port}"
        series = prom.wait_for_series('tickplane_test_orders_total{job="app"}')
        values = {s["metric"]["outcome"]: float(s["value"][1]) for s in series}
        assert values == {"filled": 3.0, "rejected": 1.0}
        assert prom.query("vector(1)")[0]["value"][1] == "1"
        recorded = prom.wait_for_series('job:up:sum{job="app"}')
        assert float(recorded[0]["value"][1]) == 1.0
    finally:
        server.shutdown()
        thread.join(5)


def test_a_server_that_cannot_start_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(ServerError, match=r"(?s)exited with status .*Bad directive"):
        RedisServer(tmp_path / "bad", settings={"no-such-directive": "1"}).start()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerError, match=rf"port {port} is taken.*\n(?s:.*)in use"):
            RedisServer(tmp_path / "taken", port=port).start()


def test_a_port_taken_between_choice_and_bind_is_replaced(
    tmp_path: Path, redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If another server grabs the chosen port first, a fresh one is chosen."""
    ports = iter([redis.port])  # taken by the session's Redis, answering PING
    monkeypatch.setattr(servers, "free_port", lambda: next(ports, None) or free_port())
    with RedisServer(tmp_path / "second") as second:
        assert second.port != redis.port
        assert second.command("PING") == b"+PONG"
        assert "Address already in use" in second.log_tail()


def test_servers_die_with_the_test_process(tmp_path: Path) -> None:
    """A test run killed with SIGKILL leaves no server behind."""
    script = (
        "import sys, time; from pathlib import Path\n"
        f"sys.path.insert(0, {str(Path(servers.__file__).parent)!r})\n"
        "from servers import RedisServer\n"
        f"r = RedisServer(Path({str(tmp_path)!r})).start()\n"
        "print(r.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    os.kill(pid, 0)  # running
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":  # dead, waiting for its new parent to reap it
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"redis-server {pid} outlived the process that started it")


def test_a_port_is_handed_out_once_per_process() -> None:
    """Ports picked before any is bound (an engine's three) never repeat: a free port
    stays free until its server binds it, so only the record of what was handed out
    keeps two picks apart."""
    singles = [ports.free_port() for _ in range(2_000)]
    base = ports.free_ports(3)
    runs = set(range(base, base + 3))
    assert len(set(singles)) == len(singles) and not runs & set(singles)
    assert all(p in ports._given for p in [*singles, *runs])
